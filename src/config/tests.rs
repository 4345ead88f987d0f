//! Loading whole `relay.toml` files from a temporary folder: what is accepted, and that
//! every mistake is reported at its file, line, column and key. The relay running on a
//! loaded config is tested in `tests/`.

use std::time::Duration;

use super::*;
use crate::destination::Kind;
use crate::rules::TemplateChoice;

const PROJECT: &str = "7d3f2e10-2222-4b3c-8d4e-000000000002";

/// A config folder: `relay.toml` plus any other files, loaded with a fixed environment.
struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
        }
    }

    fn env(mut self, name: &str, value: &str) -> Setup {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    fn file(self, name: &str, text: &str) -> Setup {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn load(self, toml: &str) -> Result<Config, Vec<Problem>> {
        let dir = self.dir.path().display().to_string();
        let setup = self.file("relay.toml", toml).env("DIR", &dir);
        let env = |name: &str| {
            let found = setup.env.iter().find(|(key, _)| key == name);
            found.map(|(_, value)| value.clone())
        };
        match Config::load_with_env(&setup.dir.path().join("relay.toml"), env) {
            Ok(config) => Ok(config),
            Err(ConfigError::Invalid(problems)) => Err(problems),
            Err(read) => panic!("the test config could not be read: {read}"),
        }
    }
}

fn load(toml: &str) -> Result<Config, Vec<Problem>> {
    Setup::new().load(toml)
}

fn problems(toml: &str) -> Vec<Problem> {
    load(toml).expect_err("the config has a mistake")
}

/// `line:column: key: message` of every problem, without the temporary folder's path.
fn described(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            let file = p.location.file.file_name().unwrap().to_string_lossy();
            let at = format!("{file}:{}:{}", p.location.line, p.location.column);
            format!("{at}: `{}`: {}", p.key, p.message)
        })
        .collect()
}

fn url_of(config: &Config, name: &str) -> String {
    match &config.targets[name].destination.kind {
        Kind::Slack { url } | Kind::Teams { url } => url.to_string(),
        Kind::Console => panic!("`{name}` is the console"),
    }
}

const CONSOLE_RULE: &str = "[destinations.console]\nkind = \"console\"\n\n\
                            [[rules]]\nname = \"all\"\nto = [\"console\"]\n";

#[test]
fn defaults_are_applied_to_a_minimal_config() {
    let config = load(CONSOLE_RULE).unwrap();

    let rule = &config.rules.rules()[0];
    let console = &config.targets["console"];
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8787");
    assert_eq!(config.server.path, "/redbrick");
    assert_eq!(
        config.links.project("o", "p"),
        "https://app.redbrickai.com/o/projects/p"
    );
    assert_eq!(console.destination.kind, Kind::Console);
    assert_eq!(console.destination.timeout, Duration::from_secs(10));
    assert_eq!(console.markup, Markup::Plain);
    assert_eq!(rule.events, None, "every event type");
    assert_eq!(rule.projects, None, "every project");
    assert_eq!(rule.stages, None, "every stage");
    assert!(rule.exclude_projects.is_empty() && rule.exclude_stages.is_empty());
    assert_eq!(rule.template, TemplateChoice::Default);
    assert!(!rule.stop);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn set_values_replace_the_defaults() {
    let toml = format!(
        "[server]\nlisten = \"0.0.0.0:9000\"\npath = \"/hooks/redbrick/\"\n\n\
         [redbrick]\napp_url = \"https://eu.redbrickai.example/\"\n\n\
         [destinations.chat]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n\
         timeout = \"30s\"\n\n{}",
        "[[rules]]\nname = \"all\"\nto = [\"chat\"]\n"
    );

    let config = load(&toml).unwrap();

    let chat = &config.targets["chat"];
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(
        config.server.path, "/hooks/redbrick",
        "a trailing slash is dropped"
    );
    assert_eq!(
        config.links.project("o", "p"),
        "https://eu.redbrickai.example/o/projects/p"
    );
    assert_eq!(chat.destination.timeout, Duration::from_secs(30));
    assert_eq!(chat.markup, Markup::Slack);
}

#[test]
fn project_names_are_resolved_to_ids_in_rules() {
    let other = "99999999-2222-4b3c-8d4e-000000000009";
    let toml = format!(
        "[projects]\n\"{PROJECT}\" = \"Chest CT\"\n\"p-short\" = \"Knee MR\"\n\n\
         [destinations.console]\nkind = \"console\"\n\n\
         [[rules]]\nname = \"r\"\nto = [\"console\"]\n\
         projects = [\"Chest CT\", \"{other}\", \"p-short\"]\nexclude_projects = [\"Knee MR\"]\n"
    );

    let config = load(&toml).unwrap();

    let rule = &config.rules.rules()[0];
    assert_eq!(
        rule.projects,
        Some(vec![
            PROJECT.to_owned(),
            other.to_owned(),
            "p-short".to_owned()
        ])
    );
    assert_eq!(rule.exclude_projects, ["p-short"]);
    assert_eq!(config.project_name(PROJECT), Some("Chest CT"));
}

#[test]
fn an_unknown_project_name_is_refused_where_it_is_written() {
    let toml = format!("{CONSOLE_RULE}projects = [\"Chest CT\"]\n");

    let problems = problems(&toml);

    assert_eq!(
        described(&problems),
        [
            "relay.toml:7:13: `rules[0].projects[0]`: unknown project `Chest CT`: not a name in \
          [projects] nor a project id"
        ]
    );
}

#[test]
fn url_file_is_read_with_its_trailing_newline_stripped() {
    let setup = Setup::new()
        .file("slack-url", "https://hooks.slack.com/services/T1/B2/abc\n")
        .file(
            "teams-url",
            "https://x.logic.azure.com/workflows/1?sig=abc\r\n",
        );
    let toml = "[destinations.chat]\nkind = \"slack\"\nurl_file = \"${DIR}/slack-url\"\n\n\
                [destinations.leads]\nkind = \"teams\"\nurl_file = \"${DIR}/teams-url\"\n\n\
                [[rules]]\nname = \"all\"\nto = [\"chat\", \"leads\"]\n";

    let config = setup.load(toml).unwrap();

    assert_eq!(
        url_of(&config, "chat"),
        "https://hooks.slack.com/services/T1/B2/abc"
    );
    assert_eq!(
        url_of(&config, "leads"),
        "https://x.logic.azure.com/workflows/1?sig=abc"
    );
}

#[test]
fn url_takes_its_value_from_the_environment() {
    let setup = Setup::new().env("SLACK_URL", "https://hooks.slack.com/services/T/B/s3");
    let toml = "[destinations.chat]\nkind = \"slack\"\nurl = \"${SLACK_URL}\"\n\n\
                [[rules]]\nname = \"all\"\nto = [\"chat\"]\n";

    let config = setup.load(toml).unwrap();

    assert_eq!(
        url_of(&config, "chat"),
        "https://hooks.slack.com/services/T/B/s3"
    );
}

#[test]
fn url_and_url_file_together_are_refused() {
    let toml = "[destinations.chat]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\n\
                url_file = \"/run/credentials/slack\"\n\n\
                [[rules]]\nname = \"all\"\nto = [\"chat\"]\n";

    let problems = problems(toml);

    assert_eq!(
        described(&problems),
        ["relay.toml:3:7: `destinations.chat.url`: set `url` or `url_file`, not both"]
    );
}

#[test]
fn a_secret_url_never_appears_in_a_problem() {
    let setup = Setup::new()
        .env("X", "not a url/SECRET1")
        .env("Y", "ftp://files.example/SECRET2")
        .file("url", "mailto:SECRET3@example.com\n");
    let toml = "[destinations.a]\nkind = \"slack\"\nurl = \"${X}\"\n\n\
                [destinations.b]\nkind = \"teams\"\nurl = \"${Y}\"\n\n\
                [destinations.c]\nkind = \"slack\"\nurl_file = \"${DIR}/url\"\n\n\
                [[rules]]\nname = \"all\"\nto = [\"a\", \"b\", \"c\"]\n";

    let problems = setup.load(toml).unwrap_err();

    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "destinations.a.url",
            "destinations.b.url",
            "destinations.c.url_file"
        ]
    );
    let shown = format!("{}\n{problems:?}", ConfigError::Invalid(problems.clone()));
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[test]
fn an_unset_variable_is_named_and_its_destination_not_called_unknown() {
    let toml = "[destinations.chat]\nkind = \"slack\"\nurl = \"${SLACK_URL}\"\n\n\
                [destinations.console]\nkind = \"console\"\n\n\
                [[rules]]\nname = \"all\"\nto = [\"console\", \"chat\", \"nowhere\"]\n";

    let problems = problems(toml);

    assert_eq!(
        described(&problems),
        [
            "relay.toml:3:7: `destinations.chat.url`: environment variable `SLACK_URL` is \
             not set",
            "relay.toml:10:26: `rules[0].to[2]`: unknown destination `nowhere` (defined: \
             chat, console)",
        ]
    );
}

#[test]
fn duplicate_rule_names_are_refused() {
    let toml = format!("{CONSOLE_RULE}\n[[rules]]\nname = \"all\"\nto = [\"console\"]\n");

    let problems = problems(&toml);

    assert_eq!(
        described(&problems),
        ["relay.toml:9:8: `rules[1].name`: rule name `all` is used twice"]
    );
}

#[test]
fn unused_destinations_are_warned_about_but_loaded() {
    let toml = format!("{CONSOLE_RULE}\n[destinations.spare]\nkind = \"console\"\n");

    let config = load(&toml).unwrap();

    assert_eq!(
        described(&config.warnings),
        ["relay.toml:8:1: `destinations.spare`: no rule sends to this destination"]
    );
    assert!(config.targets.contains_key("spare"));
}

#[test]
fn sample_failures_name_the_rule_by_its_place_in_the_file() {
    let toml = "[destinations.console]\nkind = \"console\"\n\n\
                [[rules]]\nname = \"broken\"\nto = [\"nowhere\"]\n\n\
                [[rules]]\nname = \"misspelt\"\nto = [\"console\"]\ntext = \"{{task_nmae}}\"\n";

    let problems = problems(toml);

    assert_eq!(
        described(&problems),
        [
            "relay.toml:6:7: `rules[0].to[0]`: unknown destination `nowhere` (defined: \
             console)",
            "relay.toml:11:8: `rules[1].text`: fails on a sample TASK_CREATED event: no \
             variable `task_nmae` (template line 1, column 1)",
        ]
    );
}

#[test]
fn rules_sharing_a_failing_text_are_each_reported_where_they_give_it() {
    let toml = "[destinations.console]\nkind = \"console\"\n\n\
                [[rules]]\nname = \"a\"\nto = [\"console\"]\ntext = \"{{task_nmae}}\"\n\n\
                [[rules]]\nname = \"b\"\nto = [\"console\"]\nevents = [\"TASK_DELETED\"]\n\
                text =   \"{{task_nmae}}\"\n\n\
                [[rules]]\nname = \"c\"\nto = [\"console\"]\ntext = \"{{task_nmae}}\"\n\n\
                [[rules]]\nname = \"d\"\nto = [\"console\"]\ntext = \"{{#if x}}{{/each}}\"\n\n\
                [[rules]]\nname = \"e\"\nto = [\"console\"]\ntext = \"{{#if x}}{{/each}}\"\n";

    let problems = problems(toml);

    assert_eq!(
        described(&problems),
        [
            "relay.toml:23:8: `rules[3].text`: template does not compile: helper \"if\" was \
             opened, but \"each\" is closing (template line 1, column 10)",
            "relay.toml:28:8: `rules[4].text`: template does not compile: helper \"if\" was \
             opened, but \"each\" is closing (template line 1, column 10)",
            "relay.toml:7:8: `rules[0].text`: fails on a sample TASK_CREATED event: no \
             variable `task_nmae` (template line 1, column 1)",
            "relay.toml:13:10: `rules[1].text`: fails on a sample TASK_DELETED event: no \
             variable `task_nmae` (template line 1, column 1)",
            "relay.toml:18:8: `rules[2].text`: fails on a sample TASK_CREATED event: no \
             variable `task_nmae` (template line 1, column 1)",
        ]
    );
}

#[test]
fn rules_sharing_a_good_text_each_render_it_as_themselves() {
    let rule = "[[rules]]\nto = [\"console\"]\ntext = \"{{task_name}} for {{rule}}\"\n";
    let toml = format!(
        "[destinations.console]\nkind = \"console\"\n\n{}name = \"a\"\n\n{}name = \"b\"\n",
        rule, rule
    );

    let config = load(&toml).unwrap();

    let rules = config.rules.rules();
    let sample = templates::sample_event(crate::event::EventKind::TaskCreated);
    let render = |rule: &crate::rules::Rule| {
        let TemplateChoice::Named(template) = &rule.template else {
            panic!("rule `{}` gives inline text", rule.name);
        };
        let item = crate::render::event_context(&sample, &Default::default(), None, &config.links);
        let context = crate::render::with_route(item, &rule.name, "console");
        let text = config.renderer.render(template, Markup::Plain, &context);
        (template.clone(), text.unwrap())
    };
    let rendered: Vec<_> = rules.iter().map(render).collect();
    let expected = |name: &str| {
        let template = format!("(inline text of rule `{name}`)");
        (template, format!("CT_chest_0001.nii.gz for {name}"))
    };
    assert_eq!(rendered, [expected("a"), expected("b")]);
}

#[test]
fn a_rule_name_used_twice_does_not_change_the_text_other_rules_are_checked_with() {
    let rule = |name: &str, text: &str| {
        format!("[[rules]]\nname = \"{name}\"\nto = [\"console\"]\ntext = \"{text}\"\n\n")
    };
    let toml = format!(
        "[destinations.console]\nkind = \"console\"\n\n{}{}{}",
        rule("x", "{{task_name}}"),
        rule("x", "{{task_nmae}}"),
        rule("y", "{{task_name}}"),
    );

    let problems = problems(&toml);

    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"rules[1].name"), "{keys:?}");
    assert!(
        !keys.iter().any(|key| key.starts_with("rules[2]")),
        "rule `y` gives good text: {keys:?}"
    );
}

#[test]
fn a_template_that_includes_itself_is_refused_before_it_is_tried() {
    // Tried on a sample, this would recurse until the stack overflows: `check` would abort,
    // and a reload would take the running relay down with it.
    let setup = Setup::new()
        .file("templates/loop.hbs", "{{#if task_id}}{{> loop}}{{/if}}\n")
        .file("templates/ping.hbs", "{{> pong}}")
        .file(
            "templates/pong.hbs",
            "{{#each x}}{{else}}{{> ping}}{{/each}}",
        );
    let rule = |name: &str| {
        format!("[[rules]]\nname = \"{name}\"\nto = [\"console\"]\ntemplate = \"{name}\"\n\n")
    };
    let toml = format!(
        "[destinations.console]\nkind = \"console\"\n\n{}{}{}",
        rule("loop"),
        rule("ping"),
        rule("pong")
    );

    let problems = setup.load(&toml).unwrap_err();

    let looping = |at: &str, cycle: &str| {
        format!("{at}: includes itself through partials ({cycle}): its messages would never end")
    };
    assert_eq!(
        described(&problems),
        [
            looping("loop.hbs:1:1: `rules[0].template`", "loop → loop"),
            looping("ping.hbs:1:1: `rules[1].template`", "ping → pong → ping"),
            looping("pong.hbs:1:1: `rules[2].template`", "pong → ping → pong"),
        ]
    );
}

#[test]
fn partials_whose_inclusions_cannot_be_followed_are_refused() {
    let toml = r#"
[destinations.console]
kind = "console"

[[rules]]
name = "inline"
to = ["console"]
text = '{{#*inline "x"}}{{> x}}{{/inline}}{{> x}}'

[[rules]]
name = "computed"
to = ["console"]
text = '{{> (concat "a" "b")}}'
"#;

    let problems = Setup::new().load(toml).unwrap_err();

    let described = described(&problems);
    assert_eq!(described.len(), 2, "{described:#?}");
    assert!(
        described[0].contains("`rules[1].text`: uses a partial whose name is computed"),
        "{described:#?}"
    );
    assert!(
        described[1].contains("`rules[0].text`: uses an inline partial or decorator"),
        "{described:#?}"
    );
}

#[test]
fn a_failing_template_file_is_pointed_at_the_failing_line() {
    let setup = Setup::new().file("templates/review.hbs", "Task {{task_id}}\n  {{stgae}}\n");
    let toml = format!("{CONSOLE_RULE}template = \"review\"\n");

    let problems = setup.load(&toml).unwrap_err();

    assert_eq!(
        described(&problems),
        [
            "review.hbs:2:3: `rules[0].template`: fails on a sample TASK_CREATED event: no \
          variable `stgae`"
        ]
    );
}

#[test]
fn a_template_file_overrides_the_shipped_default() {
    let setup = Setup::new().file("templates/task-created.hbs", "{{task_name}}!");

    let config = setup.load(CONSOLE_RULE).unwrap();

    let sample = templates::sample_event(crate::event::EventKind::TaskCreated);
    let context = crate::render::with_route(
        crate::render::event_context(&sample, &Default::default(), None, &config.links),
        "all",
        "console",
    );
    let text = config
        .renderer
        .render("task-created", Markup::Plain, &context)
        .unwrap();
    assert_eq!(text, "CT_chest_0001.nii.gz!");
}

#[test]
fn value_mistakes_are_all_listed_with_their_keys() {
    let toml = "[server]\nlisten = \"localhost\"\npath = \"redbrick\"\n\n\
                [destinations.chat]\nkind = \"slak\"\n\n\
                [destinations.slow]\nkind = \"console\"\ntimeout = \"soon\"\n\n\
                [[rules]]\nname = \"\"\nto = []\n";

    let problems = problems(toml);

    assert_eq!(
        described(&problems),
        [
            "relay.toml:2:10: `server.listen`: `localhost` is not an address and port such as \
             `127.0.0.1:8787`",
            "relay.toml:3:8: `server.path`: `redbrick` must start with `/`",
            "relay.toml:6:8: `destinations.chat.kind`: unknown kind `slak`; expected `slack`, \
             `teams` or `console`",
            "relay.toml:10:11: `destinations.slow.timeout`: `soon` is not a duration such as \
             `10s` or `5m`",
            "relay.toml:13:8: `rules[0].name`: must not be empty",
            "relay.toml:14:6: `rules[0].to`: a rule needs at least one destination",
        ]
    );
}

#[test]
fn every_unknown_key_is_listed_with_the_other_mistakes() {
    let toml = "templates_dri = \"t\"\n\n[redbrick]\nap_url = \"https://x.test\"\n\n\
                [destinations.console]\nkind = \"console\"\ntiemout = \"1s\"\n\n\
                [[rules]]\nname = \"r\"\nto = [\"console\", \"nowhere\"]\n";

    let problems = problems(toml);

    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "templates_dri",
            "redbrick.ap_url",
            "destinations.console.tiemout",
            "rules[0].to[1]"
        ]
    );
    assert_eq!(
        described(&problems[1..2]),
        ["relay.toml:4:1: `redbrick.ap_url`: unknown field `ap_url`, expected `app_url`"]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_key() {
    let toml = format!("{CONSOLE_RULE}stop = \"yes\"\n");

    let problems = problems(&toml);

    assert_eq!(
        described(&problems),
        ["relay.toml:7:8: `rules[0].stop`: invalid type: string \"yes\", expected a boolean"]
    );
}

#[test]
fn a_file_that_is_not_toml_is_one_problem_at_its_place() {
    let problems = problems("[server]\nlisten = [1\n");

    assert_eq!(
        described(&problems),
        ["relay.toml:2:12: `(file)`: unclosed array, expected `]`"]
    );
}

#[test]
fn tasks_forget_after_defaults_to_thirty_days_and_is_checked() {
    let default = load(CONSOLE_RULE).unwrap();
    let set = load(&format!(
        "[tasks]\nforget_after = \"12h\"\n\n{CONSOLE_RULE}"
    ))
    .unwrap();
    let wrong = problems(&format!(
        "[tasks]\nforget_after = \"soon\"\n\n{CONSOLE_RULE}"
    ));

    assert_eq!(default.tasks.forget_after, Duration::from_secs(30 * 86_400));
    assert_eq!(set.tasks.forget_after, Duration::from_secs(12 * 3600));
    assert_eq!(
        described(&wrong),
        ["relay.toml:2:16: `tasks.forget_after`: `soon` is not a duration such as `10s` or `5m`"]
    );
}

#[test]
fn people_values_are_checked_where_they_are_written() {
    let toml = format!(
        "[people.\"ann@example.com\"]\nslack = \"ann\"\nteams = \"Ann Lee\"\nname = \"<b>\"\n\n\
         [people.\"bob@example.com\"]\nslack = \"U0B0B\"\nteams = \"bob@org.example\"\n\n\
         [people.\"bo2@example.com\"]\nteams = \"bob2@org.example\"\nname = \"bob@org.example\"\n\n\
         {CONSOLE_RULE}"
    );

    let found = described(&problems(&toml));

    assert_eq!(
        found,
        [
            "relay.toml:2:9: `people.\"ann@example.com\".slack`: `ann` is not a Slack user id \
             such as `U0123ABC` (Slack: the person's profile, More, Copy member ID)",
            "relay.toml:3:9: `people.\"ann@example.com\".teams`: `Ann Lee` is not a Teams user: \
             give the user principal name (`name@org.example`) or the Entra object id",
            "relay.toml:4:8: `people.\"ann@example.com\".name`: `<b>` cannot be shown in a \
             mention: use a non-empty name without `<`, `>` or line breaks",
            "relay.toml:8:9: `people.\"bob@example.com\".teams`: another person is shown as \
             `bob@org.example` in Teams; give each a distinct `name`",
        ]
    );
}

#[test]
fn group_settings_are_checked_where_they_are_written() {
    let toml = "[destinations.console]\nkind = \"console\"\n\n\
                [[rules]]\nname = \"a\"\nto = [\"console\"]\ngroup_by = [\"stage\"]\n\n\
                [[rules]]\nname = \"b\"\nto = [\"console\"]\ngroup_window = \"30s\"\n\
                group_by = [\"stage\", \"task\"]\n";

    let found = described(&problems(toml));

    assert_eq!(
        found,
        [
            "relay.toml:7:12: `rules[0].group_by`: `group_by` needs `group_window`, such as \
             `group_window = \"30s\"`",
            "relay.toml:13:22: `rules[1].group_by[1]`: cannot group by `task`; use `project`, \
             `stage` or `event`",
        ]
    );
}

#[test]
fn reminder_mistakes_are_named_with_their_keys() {
    let toml = "[destinations.console]\nkind = \"console\"\n\n\
                [[reminders]]\nname = \"waiting\"\nafter = \"soon\"\nto = [\"consol\"]\n\n\
                [[reminders]]\nname = \"waiting\"\nafter = \"4h\"\nrepeat = \"0s\"\n\
                to = [\"console\"]\ntext = \"{{task_nmae}}\"\n";

    let found = described(&problems(toml));

    assert_eq!(
        found,
        [
            "relay.toml:6:9: `reminders[0].after`: `soon` is not a duration such as `10s` or `5m`",
            "relay.toml:7:7: `reminders[0].to[0]`: unknown destination `consol` (defined: console)",
            "relay.toml:10:8: `reminders[1].name`: reminder name `waiting` is used twice",
            "relay.toml:12:10: `reminders[1].repeat`: `0s` is not a duration such as `10s` or `5m`",
        ]
    );
}

#[test]
fn a_reminder_template_is_tried_on_a_sample_waiting_task() {
    let toml = "[destinations.console]\nkind = \"console\"\n\n\
                [[reminders]]\nname = \"waiting\"\nafter = \"4h\"\nto = [\"console\"]\n\
                text = \"{{waited}} {{task_nmae}}\"\n";

    let found = described(&problems(toml));

    assert_eq!(
        found,
        [
            "relay.toml:8:8: `reminders[0].text`: fails on a sample waiting task: no variable \
          `task_nmae` (template line 1, column 12)"
        ]
    );
}

#[test]
fn digest_mistakes_are_named_with_their_keys() {
    let toml = "[destinations.console]\nkind = \"console\"\n\n\
                [[digests]]\nname = \"morning\"\nat = \"9am\"\ndays = \"mon-fry\"\n\
                timezone = \"Europe/Pariss\"\nprojects = [\"Chest XR\"]\nto = [\"consol\"]\n\n\
                [[digests]]\nname = \"morning\"\nat = \"25:00\"\nto = [\"console\"]\n\
                text = \"{{waitnig}}\"\n";

    let found = described(&problems(toml));

    assert_eq!(
        found,
        [
            "relay.toml:6:6: `digests[0].at`: `9am` is not a time of day such as `09:00` or \
             `17:30`",
            "relay.toml:7:8: `digests[0].days`: `fry` is not a day; use `mon` to `sun`, a range \
             such as `mon-fri` or a list such as `mon,wed,fri`",
            "relay.toml:8:12: `digests[0].timezone`: unknown time zone `Europe/Pariss`; use an \
             IANA name such as `Europe/Paris` or `UTC`",
            "relay.toml:9:13: `digests[0].projects[0]`: unknown project `Chest XR`: not a name \
             in [projects] nor a project id",
            "relay.toml:10:7: `digests[0].to[0]`: unknown destination `consol` (defined: \
             console)",
            "relay.toml:13:8: `digests[1].name`: digest name `morning` is used twice",
            "relay.toml:14:6: `digests[1].at`: `25:00` is not a time of day such as `09:00` or \
             `17:30`",
        ]
    );
}

#[test]
fn a_digest_template_is_tried_on_a_sample_digest() {
    let toml = "[destinations.console]\nkind = \"console\"\n\n\
                [[digests]]\nname = \"morning\"\nat = \"09:00\"\nto = [\"console\"]\n\
                text = \"{{#each projects}}{{waitnig}}{{/each}}\"\n";

    let found = described(&problems(toml));

    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("relay.toml:8:8: `digests[0].text`: fails on a sample digest: "),
        "{found:?}"
    );
    assert!(found[0].contains("`waitnig`"), "{found:?}");
}

#[test]
fn quiet_hour_mistakes_are_named_with_their_keys() {
    let toml = "[destinations.console]\nkind = \"console\"\nquiet = \"20:00-8\"\n\
                quiet_days = \"weekdays\"\nquiet_timezone = \"Paris\"\n\n\
                [destinations.other]\nkind = \"console\"\nquiet_days = \"mon\"\n";

    let found = described(&problems(toml));

    assert_eq!(
        found,
        [
            "relay.toml:3:9: `destinations.console.quiet`: `20:00-8` is not a quiet time such \
             as `20:00-08:00` (start and end differ)",
            "relay.toml:4:14: `destinations.console.quiet_days`: `weekdays` is not a day; use \
             `mon` to `sun`, a range such as `mon-fri` or a list such as `mon,wed,fri`",
            "relay.toml:5:18: `destinations.console.quiet_timezone`: unknown time zone `Paris`; \
             use an IANA name such as `Europe/Paris` or `UTC`",
            "relay.toml:9:14: `destinations.other.quiet_days`: `quiet_days` needs `quiet`, such \
             as `quiet = \"20:00-08:00\"`",
        ]
    );
}
