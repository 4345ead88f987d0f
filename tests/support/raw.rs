//! Raw HTTP/1.1 over a socket, for requests no well-behaved client makes: a chunked body
//! written piece by piece, or headers and bodies that stop half-way.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects to `base_url` (`http://127.0.0.1:<port>`).
pub async fn connect(base_url: &str) -> TcpStream {
    let address = base_url.trim_start_matches("http://");
    TcpStream::connect(address)
        .await
        .expect("the relay accepts connections")
}

/// Writes `bytes`, which must all go out.
pub async fn write(stream: &mut TcpStream, bytes: &[u8]) {
    stream
        .write_all(bytes)
        .await
        .expect("the relay reads the request");
}

/// POSTs `total` bytes of JSON whitespace to `path` as a chunked body, with no
/// `Content-Length`, reading the answer while writing: the relay may answer and close
/// before the body ends. Returns the answer's status and body.
pub async fn post_chunked(base_url: &str, path: &str, total: usize) -> Option<(u16, String)> {
    let stream = connect(base_url).await;
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n"
    );
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let piece = vec![b' '; 64 * 1024];
        for _ in 0..total.div_ceil(piece.len()) {
            writer
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await?;
            writer.write_all(&piece).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let answer = read_answer(&mut reader).await;
    sender.abort();
    answer
}

/// Reads one answer with a `Content-Length`: its status and body, or `None` when the
/// connection ends first.
pub async fn read_answer(reader: &mut (impl AsyncRead + Unpin)) -> Option<(u16, String)> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(answer) = parse(&bytes) {
            return Some(answer);
        }
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
        }
    }
}

fn parse(bytes: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })?;
    (body.len() >= length).then(|| (status, body[..length].to_owned()))
}
