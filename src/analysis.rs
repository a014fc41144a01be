//! Metric analysis after a wave: PromQL asked of a real Prometheus over its HTTP API
//! (`/api/v1/query`), every sample held to the analysis's bounds, measured every
//! `interval` for `for`. Too many measurements out of bounds fail the wave; a
//! Prometheus that cannot be asked, or has no data at all, is inconclusive (the run
//! pauses, it never passes by default).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::plan::Analysis;

/// What a metric analysis found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    Failed,
    /// Prometheus could not be asked, or had no data: the run pauses.
    Inconclusive,
}

/// One query to ask: for a node (when the analysis uses its placeholders) or the wave.
struct Query {
    node: Option<String>,
    url: String,
    promql: String,
    /// The URL and query as messages show them: placeholders filled, `${VAR}`s as written.
    shown_url: String,
    shown_promql: String,
}

/// The queries of `a` for the nodes of a wave: one per node if it uses a node's
/// placeholders, else one.
fn queries(a: &Analysis, targets: &[Asked]) -> Result<Vec<Query>, String> {
    let env = |k: &str| std::env::var(k).ok();
    let per_node = a.query.value.vars().next().is_some() || a.url.value.vars().next().is_some();
    if !per_node {
        let fill = |t: &crate::template::Template| {
            t.render(|_| None, env)
                .map_err(|m| format!("`{t}` cannot be filled: {m:?}"))
        };
        return Ok(vec![Query {
            node: None,
            url: fill(&a.url.value)?,
            promql: fill(&a.query.value)?,
            shown_url: a.url.value.shown(|_| None),
            shown_promql: a.query.value.shown(|_| None),
        }]);
    }
    targets
        .iter()
        .map(|(name, vars)| {
            let fill = |t: &crate::template::Template| {
                t.render(|k| vars.get(k).cloned(), env)
                    .map_err(|m| format!("`{t}` cannot be filled for {name}: {m:?}"))
            };
            Ok(Query {
                node: Some(name.clone()),
                url: fill(&a.url.value)?,
                promql: fill(&a.query.value)?,
                shown_url: a.url.value.shown(|k| vars.get(k).cloned()),
                shown_promql: a.query.value.shown(|k| vars.get(k).cloned()),
            })
        })
        .collect()
}

/// What one measurement found.
#[derive(Debug, PartialEq)]
enum Measure {
    /// Every sample within bounds (how many samples).
    Within(usize),
    /// A sample out of bounds, in words.
    Out(String),
    /// No answer, or no data, in words.
    Unknown(String),
}

/// The samples of a Prometheus query answer (`vector` or `scalar`), with each one's
/// labels in words.
pub fn samples(body: &serde_json::Value) -> Result<Vec<(String, f64)>, String> {
    if body.get("status").and_then(|s| s.as_str()) != Some("success") {
        let e = body
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no status");
        return Err(format!("Prometheus refused the query: {e}"));
    }
    let data = body.get("data").ok_or("the answer has no data")?;
    let value = |v: &serde_json::Value| -> Option<f64> {
        let s = v.get(1)?.as_str()?;
        match s {
            "NaN" => Some(f64::NAN),
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            s => s.parse().ok(),
        }
    };
    match data.get("resultType").and_then(|t| t.as_str()) {
        Some("vector") => {
            let result = data
                .get("result")
                .and_then(|r| r.as_array())
                .ok_or("the answer has no result")?;
            result
                .iter()
                .map(|r| {
                    let labels = r
                        .get("metric")
                        .and_then(|m| m.as_object())
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default();
                    let v = r
                        .get("value")
                        .and_then(value)
                        .ok_or("a sample has no value")?;
                    Ok((format!("{{{labels}}}"), v))
                })
                .collect()
        }
        Some("scalar") => Ok(vec![(
            "scalar".into(),
            data.get("result")
                .and_then(value)
                .ok_or("the scalar has no value")?,
        )]),
        other => Err(format!(
            "the query gives a {}, not an instant vector or a scalar",
            other.unwrap_or("nothing")
        )),
    }
}

/// Holds samples to the bounds.
fn judge(a: &Analysis, samples: &[(String, f64)]) -> Measure {
    if samples.is_empty() {
        return Measure::Unknown("no data".into());
    }
    for (labels, v) in samples {
        if v.is_nan() {
            return Measure::Out(format!("{labels} is NaN"));
        }
        if let Some(max) = a.max
            && *v > max
        {
            return Measure::Out(format!("{labels} is {v}, above max {max}"));
        }
        if let Some(min) = a.min
            && *v < min
        {
            return Measure::Out(format!("{labels} is {v}, below min {min}"));
        }
    }
    Measure::Within(samples.len())
}

/// Asks Prometheus; an error names the URL as written (`${VAR}`s unfilled), and what the
/// client or server said has the filled URL and query taken out.
fn ask(agent: &ureq::Agent, q: &Query) -> Result<Vec<(String, f64)>, String> {
    let url = format!("{}/api/v1/query", q.url.trim_end_matches('/'));
    let hide = |e: String| {
        e.replace(
            &url,
            &format!("{}/api/v1/query", q.shown_url.trim_end_matches('/')),
        )
        .replace(&q.url, &q.shown_url)
        .replace(&q.promql, &q.shown_promql)
    };
    let shown = &q.shown_url;
    let mut resp = agent
        .get(&url)
        .query("query", &q.promql)
        .call()
        .map_err(|e| hide(format!("Prometheus at {shown} cannot be asked: {e}")))?;
    let text = resp
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .map_err(|e| hide(format!("Prometheus at {shown} cannot be read: {e}")))?;
    let body: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("Prometheus at {shown} gave no JSON: {e}"))?;
    samples(&body).map_err(hide)
}

/// Runs analysis `a` for a wave of `nodes` until its `for` is over (or `stop` says so):
/// its verdict and the words that say why.
/// A target an analysis asks about: its name and the placeholders its queries fill.
pub type Asked = (String, std::collections::BTreeMap<String, String>);

pub fn check(a: &Analysis, targets: &[Asked], stop: &dyn Fn() -> bool) -> (Verdict, String) {
    let queries = match queries(a, targets) {
        Ok(q) => q,
        Err(e) => return (Verdict::Inconclusive, e),
    };
    if queries.is_empty() {
        return (Verdict::Passed, "no node of the wave to ask about".into());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let started = Instant::now();
    let mut out_of_bounds = 0u32;
    let mut measured = 0usize;
    // Per query: measurements in a row without an answer or data (the last one too:
    // a metric that vanished is no pass).
    let mut errors = vec![0u32; queries.len()];
    let mut last_unknown = String::new();
    loop {
        measured += 1;
        for (i, q) in queries.iter().enumerate() {
            let who = q
                .node
                .as_deref()
                .map_or(String::new(), |n| format!("{n}: "));
            let m = match ask(&agent, q) {
                Ok(s) => judge(a, &s),
                Err(e) => Measure::Unknown(e),
            };
            match m {
                Measure::Within(_) => errors[i] = 0,
                Measure::Out(why) => {
                    errors[i] = 0;
                    out_of_bounds += 1;
                    if out_of_bounds > a.failure_limit {
                        return (
                            Verdict::Failed,
                            format!(
                                "{who}{why} (`{}`; {out_of_bounds} measurement(s) out of bounds, {} tolerated)",
                                q.shown_promql, a.failure_limit
                            ),
                        );
                    }
                }
                Measure::Unknown(why) => {
                    errors[i] += 1;
                    last_unknown = format!("{who}{why} (`{}`)", q.shown_promql);
                    if errors[i] >= a.consecutive_errors {
                        return (
                            Verdict::Inconclusive,
                            format!(
                                "{last_unknown}; {} measurement(s) in a row without data",
                                errors[i]
                            ),
                        );
                    }
                }
            }
        }
        if started.elapsed() >= a.watch_for || stop() {
            break;
        }
        let left = a.watch_for.saturating_sub(started.elapsed());
        let until = Instant::now() + a.interval.min(left);
        while Instant::now() < until && !stop() {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }
    // Cut short by a stop, it has not watched for its `for`: asked again on resume.
    if started.elapsed() < a.watch_for && stop() {
        return (
            Verdict::Inconclusive,
            format!(
                "cut short by a stop after {measured} measurement(s) of the {} it watches for",
                crate::duration::human(a.watch_for)
            ),
        );
    }
    if errors.iter().all(|e| *e == 0) {
        (
            Verdict::Passed,
            format!(
                "{measured} measurement(s) of {} quer{} within bounds{}",
                queries.len(),
                if queries.len() == 1 { "y" } else { "ies" },
                if out_of_bounds > 0 {
                    format!(", {out_of_bounds} out (tolerated)")
                } else {
                    String::new()
                }
            ),
        )
    } else {
        (Verdict::Inconclusive, last_unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn samples_come_from_vectors_and_scalars_and_refusals_are_errors() {
        let v = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"node": "n1"}, "value": [1.0, "3"]},
            {"metric": {}, "value": [1.0, "NaN"]}
        ]}});
        let s = samples(&v).unwrap();
        assert_eq!(s[0], ("{node=n1}".to_owned(), 3.0));
        assert!(s[1].1.is_nan());
        let sc =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0.5"]}});
        assert_eq!(samples(&sc).unwrap(), vec![("scalar".to_owned(), 0.5)]);
        let err = json!({"status": "error", "error": "parse error"});
        assert!(samples(&err).unwrap_err().contains("parse error"));
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert!(samples(&matrix).unwrap_err().contains("matrix"));
    }

    /// Analysis `extra` (more keys of its `prometheus` map, `, for: 0s`) of a metric that a real HTTP server
    /// on 127.0.0.1 answers with `value` every time, as Prometheus does: its verdict.
    fn analyse(value: &str, extra: &str) -> (Verdict, String) {
        analyse_until(value, extra, &|| false)
    }

    /// [`analyse`], with `stop` asked as a run's stop flag would be.
    fn analyse_until(value: &str, extra: &str, stop: &dyn Fn() -> bool) -> (Verdict, String) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}"#
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut c) = conn else { break };
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        let text = format!(
            "plan: 1\nname: p\nproduct: emqx\nrepository: ./r\nto: 4.4.16\nnodes: [{{ name: n1, root: ./n1 }}]\n\
            analysis:\n  - name: errors\n    prometheus: {{ url: \"http://127.0.0.1:{port}\", query: up, max: 1{extra} }}\n"
        );
        let plan = crate::plan::load_text(
            crate::span::SourceFile::new("p.yaml", text),
            crate::plan::Format::Yaml,
            std::path::Path::new("."),
        )
        .plan
        .unwrap();
        check(&plan.analysis[0], &[], stop)
    }

    /// A passed verdict counts what it measured: with `for: 0s`, one measurement of
    /// each query.
    #[test]
    fn a_passed_analysis_says_how_many_measurements_it_took() {
        let (verdict, why) = analyse("0.5", ", for: 0s");
        assert_eq!(verdict, Verdict::Passed, "{why}");
        assert_eq!(why, "1 measurement(s) of 1 query within bounds");
    }

    /// Measurements are spaced by `interval`, shortened to what is left of the window:
    /// over a 300ms window with an hour between measurements, one at the start and one at
    /// the end, never a burst of them.
    #[test]
    fn measurements_are_spaced_by_the_interval_and_end_with_the_window() {
        let (verdict, why) = analyse("0.5", ", for: 300ms, interval: 1h");
        assert_eq!(verdict, Verdict::Passed, "{why}");
        assert_eq!(why, "2 measurement(s) of 1 query within bounds");
    }

    /// A stop that comes once the window is over does not make a full watch inconclusive.
    #[test]
    fn a_stop_at_the_end_of_the_window_does_not_cut_it_short() {
        let (verdict, why) = analyse_until("0.5", ", for: 0s", &|| true);
        assert_eq!(verdict, Verdict::Passed, "{why}");
    }

    /// A stop between two measurements ends the wait for the next one at once (with
    /// an hour between measurements, anything else would hang here), and the watch,
    /// cut short, is inconclusive: asked again on resume.
    #[test]
    fn a_stop_between_measurements_ends_the_wait_and_is_inconclusive() {
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let stop = || asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1;
        let (verdict, why) = analyse_until("0.5", ", for: 2h, interval: 1h", &stop);
        assert_eq!(verdict, Verdict::Inconclusive, "{why}");
        assert!(
            why.starts_with("cut short by a stop after 2 measurement(s) of the 2h"),
            "{why}"
        );
    }

    /// `failure_limit` measurements out of bounds are tolerated; one more fails.
    #[test]
    fn failure_limit_measurements_out_of_bounds_are_tolerated() {
        let (verdict, why) = analyse("7", ", for: 0s, failure_limit: 1");
        assert_eq!(verdict, Verdict::Passed, "{why}");
        assert_eq!(
            why,
            "1 measurement(s) of 1 query within bounds, 1 out (tolerated)"
        );
        let (verdict, why) = analyse("7", ", for: 0s");
        assert_eq!(verdict, Verdict::Failed, "{why}");
        assert!(
            why.contains("1 measurement(s) out of bounds, 0 tolerated"),
            "{why}"
        );
    }

    #[test]
    fn bounds_judge_every_sample_and_no_data_is_unknown() {
        let text = "plan: 1\nname: p\nproduct: emqx\nrepository: ./r\nto: 4.4.16\nnodes: [{ name: n1, root: ./n1 }]\n\
            analysis:\n  - name: errors\n    prometheus: { url: \"http://127.0.0.1:9\", query: up, max: 1, min: 0 }\n";
        let plan = crate::plan::load_text(
            crate::span::SourceFile::new("p.yaml", text.to_owned()),
            crate::plan::Format::Yaml,
            std::path::Path::new("."),
        )
        .plan
        .unwrap();
        let a = &plan.analysis[0];
        assert_eq!(judge(a, &[("x".into(), 1.0)]), Measure::Within(1));
        assert!(
            matches!(judge(a, &[("x".into(), 0.0), ("y".into(), 1.5)]), Measure::Out(w) if w.contains("y is 1.5, above max 1"))
        );
        assert!(
            matches!(judge(a, &[("x".into(), -1.0)]), Measure::Out(w) if w.contains("below min 0"))
        );
        assert!(matches!(
            judge(a, &[("x".into(), f64::NAN)]),
            Measure::Out(_)
        ));
        assert_eq!(judge(a, &[]), Measure::Unknown("no data".into()));
        // Nothing listens on port 9 of loopback: inconclusive, never passed.
        let (v, why) = check(a, &[], &|| false);
        assert_eq!(v, Verdict::Inconclusive, "{why}");
        assert!(why.contains("cannot be asked"), "{why}");
    }
}
