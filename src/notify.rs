//! Webhooks told how a run goes (`notify:`): a JSON body posted when the run starts, a
//! wave is done, it fails, pauses or finishes (docs/notify.md). The body carries a
//! Slack-compatible `text`. A webhook that fails is said in the run's output and
//! journal and never fails the run; its URL is shown as written, `${ENV}` secrets
//! never filled in.

use std::time::Duration;

use serde_json::{Value, json};

use crate::plan::{Notify, NotifyOn, Plan};

/// The version of the webhook body (docs/notify.md).
pub const BODY_VERSION: u32 = 1;

pub struct Notifier<'a> {
    hooks: &'a [Notify],
    plan: String,
    run: String,
}

impl<'a> Notifier<'a> {
    pub fn new(plan: &'a Plan, run: &str) -> Notifier<'a> {
        Notifier {
            hooks: &plan.notify,
            plan: plan.name.clone(),
            run: run.to_owned(),
        }
    }

    /// Posts `text` and `fields` for moment `on` to every webhook that wants it; what
    /// failed, in words (secrets hidden).
    pub fn send(&self, on: NotifyOn, text: &str, fields: Value) -> Vec<String> {
        let mut body = json!({
            "v": BODY_VERSION,
            "text": format!("fleetup: {text}"),
            "event": on.as_str(),
            "run": self.run,
            "plan": self.plan,
        });
        if let (Some(b), Value::Object(f)) = (body.as_object_mut(), fields) {
            b.extend(f);
        }
        let mut failed = Vec::new();
        for h in self.hooks.iter().filter(|h| h.on.contains(&on)) {
            if let Err(e) = post(h, &body) {
                failed.push(e);
            }
        }
        failed
    }
}

/// One webhook post, bounded; an error names the URL as written.
fn post(h: &Notify, body: &Value) -> Result<(), String> {
    let t = &h.webhook.value;
    let shown = t.shown(|_| None);
    let url = t
        .render(|_| None, |k| std::env::var(k).ok())
        .map_err(|m| format!("webhook {shown} cannot be filled: {m:?}"))?;
    // Whatever an error says, no secret value is in it.
    let secrets = crate::template::Secrets::read([t]);
    let hide = |s: String| secrets.hide(&s.replace(&url, &shown));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let text = serde_json::to_string(body).unwrap_or_default();
    let resp = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(text.as_bytes())
        .map_err(|e| hide(format!("webhook {shown} failed: {e}")))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(format!("webhook {shown} answered HTTP {status}"));
    }
    Ok(())
}
