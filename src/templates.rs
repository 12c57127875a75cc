//! Notification templates, per locale, rendered with minijinja.
//!
//! `templates/<name>/<locale>.toml` holds one locale of one template:
//!
//! ```toml
//! title = "Transfer received"
//! body = "You received {{ amount }} {{ currency }} from {{ sender }}."
//! [data]            # optional custom payload keys, each a template too
//! kind = "transfer"
//! [options]         # optional content options (see `content::Options`);
//! thread_id = "transfers"   # text options are templates too
//! sound = "cash.caf"
//! ```
//!
//! A notification's own `options` override its template's.
//!
//! Everything is parsed and compiled once at start-up, so a syntax error
//! stops `check-config` and the daemon before anything is sent. Rendering
//! is strict: a variable the template uses but the notification's data lacks
//! is an error naming the variable, recorded as a permanent failure.
//! Locale fallback: the device's locale (`pt-BR`), then its language (`pt`),
//! then the app's default locale.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;

use crate::content::Options;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read templates from {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("unknown template {name:?} (looked for locales {tried:?}); add templates/{name}/<locale>.toml")]
    NotFound { name: String, tried: Vec<String> },
    #[error("template {name:?} ({locale}) needs variable(s) {missing:?} that the notification's data does not have")]
    MissingVariables {
        name: String,
        locale: String,
        missing: Vec<String>,
    },
    #[error("notification options are not valid: {0}")]
    Options(#[from] crate::content::OptionsError),
    #[error("template {name:?} ({locale}) failed to render: {message}")]
    Render {
        name: String,
        locale: String,
        message: String,
    },
}

/// The text of one notification for one device.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    pub title: Option<String>,
    pub body: String,
    /// Custom payload. String values only, because FCM's `data` and most
    /// client code want strings.
    pub data: Vec<(String, String)>,
    /// Content options: the template's, overridden by the message's.
    pub options: Options,
}

impl Rendered {
    /// An inline notification: title and body as given, `data` (a JSON
    /// object) as the custom payload, non-string values as JSON text.
    pub fn inline(title: Option<&str>, body: &str, data: &serde_json::Value) -> Rendered {
        Rendered {
            options: Options::default(),
            title: title.map(str::to_owned),
            body: body.to_owned(),
            data: data
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            let v = match v {
                                serde_json::Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            (k.clone(), v)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    title: Option<String>,
    body: String,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, toml::Value>,
}

/// One locale of one template: which parts exist (the sources live in the
/// minijinja environment under derived names).
struct Variant {
    has_title: bool,
    data_keys: Vec<String>,
    /// The options without a template in them, parsed and checked once.
    options: Options,
    /// Options whose value is a template (`options.<key>`): rendered, then
    /// parsed, per message.
    templated_options: Vec<String>,
}

pub struct Templates {
    env: Environment<'static>,
    /// name -> locale -> variant
    index: HashMap<String, HashMap<String, Variant>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("templates", &self.len())
            .finish()
    }
}

fn part(name: &str, locale: &str, part: &str) -> String {
    format!("{name}/{locale}#{part}")
}

impl Templates {
    /// Loads and compiles every `<dir>/<name>/<locale>.toml`.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TemplateError::Io { path, source }
        };
        let mut templates = Templates::empty();
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(dir))?;
        names.sort_by_key(|e| e.file_name());
        for entry in names {
            if !entry.path().is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(entry.path()).map_err(io(&entry.path()))? {
                let path = file.map_err(io(&entry.path()))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                    continue;
                }
                let locale = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_owned();
                let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                templates
                    .add(&name, &locale, &text)
                    .map_err(|message| TemplateError::Invalid {
                        path: path.clone(),
                        message,
                    })?;
            }
        }
        Ok(templates)
    }

    fn empty() -> Templates {
        let mut env = Environment::new();
        // A missing variable must fail loudly, not render as "".
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        Templates {
            env,
            index: HashMap::new(),
        }
    }

    /// Adds one locale of one template from its TOML text.
    pub fn add(&mut self, name: &str, locale: &str, toml_text: &str) -> Result<(), String> {
        let file: TemplateFile = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let mut add = |p: &str, src: String| {
            self.env
                .add_template_owned(part(name, locale, p), src)
                .map_err(|e| format!("{p}: {e}"))
        };
        let has_title = file.title.is_some();
        if let Some(title) = file.title {
            add("title", title)?;
        }
        add("body", file.body)?;
        let mut data_keys = Vec::with_capacity(file.data.len());
        for (key, src) in file.data {
            add(&format!("data.{key}"), src)?;
            data_keys.push(key);
        }
        let mut fixed = serde_json::Map::with_capacity(file.options.len());
        let mut templated_options = Vec::new();
        for (key, value) in file.options {
            let value = serde_json::to_value(&value).map_err(|e| format!("options.{key}: {e}"))?;
            match value {
                serde_json::Value::String(src) if src.contains("{{") || src.contains("{%") => {
                    // Only its name can be checked before it is rendered.
                    let probe = serde_json::json!({ key.as_str(): "" });
                    if let Err(e) = Options::from_json(&probe) {
                        if e.to_string().contains("unknown field") {
                            return Err(format!("options: {e}"));
                        }
                    }
                    add(&format!("options.{key}"), src)?;
                    templated_options.push(key);
                }
                value => {
                    fixed.insert(key, value);
                }
            }
        }
        // Checked here, so an unknown key or a bad value stops the start-up
        // instead of failing every send.
        let options =
            Options::from_json(&serde_json::Value::Object(fixed)).map_err(|e| e.to_string())?;
        self.index.entry(name.to_owned()).or_default().insert(
            locale.to_owned(),
            Variant {
                has_title,
                data_keys,
                options,
                templated_options,
            },
        );
        Ok(())
    }

    /// Number of template variants (template × locale).
    pub fn len(&self) -> usize {
        self.index.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Renders template `name` for a device locale, falling back to the
    /// language and then to `default_locale`; `options` (the message's)
    /// override the template's.
    pub fn render(
        &self,
        name: &str,
        device_locale: &str,
        default_locale: &str,
        data: &serde_json::Value,
        options: Options,
    ) -> Result<Rendered, TemplateError> {
        let language = device_locale
            .split(['-', '_'])
            .next()
            .unwrap_or(device_locale);
        let candidates = [device_locale, language, default_locale];
        let found = self.index.get(name).and_then(|locales| {
            candidates
                .iter()
                .find_map(|l| locales.get(*l).map(|v| (*l, v)))
        });
        let Some((locale, variant)) = found else {
            let mut tried: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
            tried.dedup();
            return Err(TemplateError::NotFound {
                name: name.to_owned(),
                tried,
            });
        };
        let render = |p: &str| -> Result<String, TemplateError> {
            let tmpl = self
                .env
                .get_template(&part(name, locale, p))
                .expect("indexed template parts are in the environment");
            tmpl.render(data).map_err(|e| {
                let mut missing: Vec<String> = tmpl
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|v| data.get(v).is_none())
                    .collect();
                if missing.is_empty() {
                    TemplateError::Render {
                        name: name.to_owned(),
                        locale: locale.to_owned(),
                        message: e.to_string(),
                    }
                } else {
                    missing.sort();
                    TemplateError::MissingVariables {
                        name: name.to_owned(),
                        locale: locale.to_owned(),
                        missing,
                    }
                }
            })
        };
        Ok(Rendered {
            title: if variant.has_title {
                Some(render("title")?)
            } else {
                None
            },
            body: render("body")?,
            data: variant
                .data_keys
                .iter()
                .map(|k| Ok((k.clone(), render(&format!("data.{k}"))?)))
                .collect::<Result<_, TemplateError>>()?,
            options: if variant.templated_options.is_empty() {
                variant.options.clone().merged(options)
            } else {
                let rendered = variant
                    .templated_options
                    .iter()
                    .map(|k| Ok((k.clone(), render(&format!("options.{k}"))?.into())))
                    .collect::<Result<_, TemplateError>>()?;
                let rendered = Options::from_json(&serde_json::Value::Object(rendered))?;
                variant.options.clone().merged(rendered).merged(options)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Templates {
        let mut t = Templates::empty();
        t.add(
            "transfer",
            "en",
            "title = \"Transfer received\"\nbody = \"You received {{ amount }}\"\n[data]\nkind = \"transfer\"\nvalue = \"{{ amount }}\"\n",
        )
        .unwrap();
        t.add(
            "transfer",
            "pt",
            "title = \"Transferência\"\nbody = \"Recebeu {{ amount }}\"\n",
        )
        .unwrap();
        t
    }

    #[test]
    fn renders_with_locale_fallback() {
        let t = sample();
        let data = json!({"amount": "10 EUR"});
        assert_eq!(
            t.render("transfer", "pt-BR", "en", &data, Options::default())
                .unwrap()
                .body,
            "Recebeu 10 EUR"
        );
        assert_eq!(
            t.render("transfer", "pt", "en", &data, Options::default())
                .unwrap()
                .body,
            "Recebeu 10 EUR"
        );
        let en = t
            .render("transfer", "de-AT", "en", &data, Options::default())
            .unwrap();
        assert_eq!(en.title.as_deref(), Some("Transfer received"));
        assert_eq!(
            en.data,
            vec![
                ("kind".into(), "transfer".into()),
                ("value".into(), "10 EUR".into())
            ]
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let err = sample()
            .render("transfer", "en", "en", &json!({}), Options::default())
            .unwrap_err();
        assert!(
            matches!(&err, TemplateError::MissingVariables { missing, .. } if missing == &["amount"])
        );
        assert!(err.to_string().contains("\"amount\""), "{err}");
    }

    #[test]
    fn unknown_template_says_where_to_add_it() {
        let err = sample()
            .render("nope", "fr-CA", "en", &json!({}), Options::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown template \"nope\" (looked for locales [\"fr-CA\", \"fr\", \"en\"]); add templates/nope/<locale>.toml"
        );
    }

    #[test]
    fn syntax_errors_are_caught_at_load() {
        let mut t = Templates::empty();
        let err = t.add("bad", "en", "body = \"{{ unclosed \"\n").unwrap_err();
        assert!(err.starts_with("body:"), "{err}");
        assert!(t.add("bad", "en", "bodyy = \"x\"\n").is_err());
    }

    #[test]
    fn template_options_are_rendered_and_the_messages_win() {
        let mut t = Templates::empty();
        t.add(
            "pay",
            "en",
            "body = \"b\"\n[options]\nthread_id = \"acct-{{ account }}\"\nbadge = 3\nsound = \"cash.caf\"\n",
        )
        .unwrap();
        let over = Options {
            badge: Some(0),
            ..Options::default()
        };
        let r = t
            .render("pay", "en", "en", &json!({"account": "42"}), over)
            .unwrap();
        assert_eq!(r.options.thread_id.as_deref(), Some("acct-42"));
        assert_eq!(r.options.badge, Some(0));
        assert_eq!(
            r.options.sound,
            Some(crate::content::Sound::Name("cash.caf".into()))
        );
        let err = t
            .add("bad", "en", "body = \"b\"\n[options]\nbadgee = 1\n")
            .unwrap_err();
        assert!(err.contains("badgee"), "{err}");
        let err = t
            .add(
                "bad",
                "en",
                "body = \"b\"\n[options]\nthread = \"{{ t }}\"\n",
            )
            .unwrap_err();
        assert!(err.contains("thread"), "{err}");
    }

    #[test]
    fn checked_options_can_be_templates_too() {
        // As written, neither is a URL or a colour; rendered, both are.
        let mut t = Templates::empty();
        t.add(
            "promo",
            "en",
            "body = \"b\"\n[options]\nimage = \"{{ image }}\"\ncolor = \"{{ color }}\"\n",
        )
        .unwrap();
        let data = json!({"image": "https://cdn.example.com/a.png", "color": "#112233"});
        let r = t
            .render("promo", "en", "en", &data, Options::default())
            .unwrap();
        assert_eq!(
            r.options.image.as_deref(),
            Some("https://cdn.example.com/a.png")
        );
        assert_eq!(r.options.color.as_deref(), Some("#112233"));
        let bad = json!({"image": "http://insecure/a.png", "color": "#112233"});
        let err = t
            .render("promo", "en", "en", &bad, Options::default())
            .unwrap_err();
        assert!(err.to_string().contains("image"), "{err}");
    }

    #[test]
    fn inline_data_becomes_strings() {
        let r = Rendered::inline(
            Some("Hi"),
            "Body",
            &json!({"n": 3, "s": "x", "o": {"a": true}}),
        );
        assert_eq!(
            r.data,
            vec![
                ("n".into(), "3".into()),
                ("o".into(), "{\"a\":true}".into()),
                ("s".into(), "x".into())
            ]
        );
    }

    #[test]
    fn shipped_templates_load() {
        let t = Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")).unwrap();
        assert!(t.contains("transfer_received") && t.contains("one_time_code"));
    }
}
