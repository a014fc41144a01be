//! What a service's spec file holds, for the engine its deploy hook hands it to
//! (`render:` of a group): fleetup's own spec, Kubernetes manifests (a Deployment, a
//! Service for its ports and a PersistentVolumeClaim per volume, which `kubectl apply -f`
//! takes), or a Compose file (`docker compose -f` takes it).

use serde_json::{Value, json};

use super::*;
pub use crate::plan::Render;

/// Storage each volume's claim asks for: a template says where data lives, not how much.
pub const CLAIM_SIZE: &str = "1Gi";

impl Render {
    pub fn parse(s: &str) -> Option<Render> {
        match s {
            "spec" => Some(Render::Spec),
            "kubernetes" => Some(Render::Kubernetes),
            "compose" => Some(Render::Compose),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Render::Spec => "spec",
            Render::Kubernetes => "kubernetes",
            Render::Compose => "compose",
        }
    }
}

fn bad(service: &str, m: String) -> Problem {
    Problem::new(Code::MarketTemplate, format!("service `{service}`: {m}"))
}

/// A name Kubernetes takes for an object (RFC 1123 label: lowercase letters, digits and
/// `-`, a letter or digit at each end, at most 63): `Api_v2` becomes `api-v2`.
fn dns_label(s: &str) -> Option<String> {
    let mapped: String = s
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' => c,
            _ => '-',
        })
        .collect();
    let t = mapped.trim_matches('-');
    (!t.is_empty() && t.len() <= 63).then(|| t.to_owned())
}

/// A label value: letters, digits, `-`, `_`, `.`, a letter or digit at each end.
fn label_value(s: &str) -> String {
    s.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(63)
        .collect()
}

fn k8s_protocol(p: &str) -> &'static str {
    match p.to_ascii_lowercase().as_str() {
        "udp" => "UDP",
        "sctp" => "SCTP",
        _ => "TCP",
    }
}

/// Whether `s` is a size as Kubernetes writes quantities for storage: a number, then
/// nothing or a unit (`10Gi`, `500Mi`, `1.5G`, `2T`).
pub fn is_quantity(s: &str) -> bool {
    let digits = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1
        && [
            "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
        ]
        .contains(&unit)
}

/// The text of service `name`'s spec file in `render`'s format.
pub fn render(
    render: Render,
    group: &str,
    name: &str,
    spec: &ServiceSpec,
) -> Result<String, Problem> {
    match render {
        Render::Spec => serde_saphyr::to_string(spec)
            .map_err(|e| Problem::new(Code::Io, format!("cannot render {name}: {e}"))),
        Render::Kubernetes => kubernetes(group, name, spec),
        Render::Compose => compose(name, spec),
    }
}

fn yaml_docs(docs: &[Value], name: &str) -> Result<String, Problem> {
    let mut out = String::new();
    for d in docs {
        let text = serde_saphyr::to_string(d)
            .map_err(|e| Problem::new(Code::Io, format!("cannot render {name}: {e}")))?;
        out.push_str("---\n");
        out.push_str(&text);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

fn kubernetes(group: &str, name: &str, spec: &ServiceSpec) -> Result<String, Problem> {
    let obj = dns_label(name)
        .ok_or_else(|| bad(name, "cannot be named as a Kubernetes object".into()))?;
    let labels = json!({
        "app.kubernetes.io/name": label_value(name),
        "app.kubernetes.io/part-of": label_value(group),
        "app.kubernetes.io/managed-by": "fleetup",
    });
    let selector = json!({ "app.kubernetes.io/name": label_value(name) });
    // A port's name is unique in the pod: `p80`, or `u53` for a UDP port.
    let port_name = |p: &Port| {
        let prefix = match k8s_protocol(&p.protocol) {
            "UDP" => "u",
            "SCTP" => "s",
            _ => "p",
        };
        format!("{prefix}{}", p.port)
    };
    let claim = |i: usize| format!("{obj}-data-{i}");
    let container = json!({
        "name": obj,
        "image": spec.image,
        "ports": spec.ports.iter().map(|p| json!({
            "name": port_name(p),
            "containerPort": p.port,
            "protocol": k8s_protocol(&p.protocol),
        })).collect::<Vec<_>>(),
        "env": spec.env.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect::<Vec<_>>(),
        "volumeMounts": spec.volumes.iter().enumerate().map(|(i, v)| json!({
            "name": claim(i),
            "mountPath": v.path,
        })).collect::<Vec<_>>(),
    });
    let mut container = container;
    // Ready once it listens: the Service sends no client to a pod before.
    if let Some(p) = spec
        .ports
        .iter()
        .find(|p| k8s_protocol(&p.protocol) == "TCP")
    {
        container["readinessProbe"] = json!({
            "tcpSocket": { "port": p.port },
            "periodSeconds": 5,
        });
    }
    let mut docs = vec![json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": obj, "labels": labels },
        "spec": {
            "replicas": 1,
            // A ReadWriteOnce claim is held by the old pod until it ends: the new one
            // could not attach it during a rolling update, so the old pod goes first.
            "strategy": { "type": if spec.volumes.is_empty() { "RollingUpdate" } else { "Recreate" } },
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "containers": [container],
                    "volumes": spec.volumes.iter().enumerate().map(|(i, _)| json!({
                        "name": claim(i),
                        "persistentVolumeClaim": { "claimName": claim(i) },
                    })).collect::<Vec<_>>(),
                },
            },
        },
    })];
    if !spec.ports.is_empty() {
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": obj, "labels": labels },
            "spec": {
                "selector": selector,
                "ports": spec.ports.iter().map(|p| {
                    let mut port = json!({
                        "name": port_name(p),
                        "port": p.port,
                        "targetPort": p.port,
                        "protocol": k8s_protocol(&p.protocol),
                    });
                    if matches!(p.protocol.as_str(), "http" | "https") {
                        port["appProtocol"] = json!(p.protocol);
                    }
                    port
                }).collect::<Vec<_>>(),
            },
        }));
    }
    for (i, v) in spec.volumes.iter().enumerate() {
        let size = v.size.as_deref().unwrap_or(CLAIM_SIZE);
        docs.push(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": { "name": claim(i), "labels": labels },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": size } },
            },
        }));
    }
    yaml_docs(&docs, name)
}

fn compose(name: &str, spec: &ServiceSpec) -> Result<String, Problem> {
    // A named volume per mount: `<service>-data-<i>`.
    let volume = |i: usize| format!("{name}-data-{i}");
    // Restarted by the engine when it exits or the machine reboots, unless stopped by hand.
    let mut service = json!({ "image": spec.image, "restart": "unless-stopped" });
    let suffix = |p: &Port| match p.protocol.to_ascii_lowercase().as_str() {
        "udp" => "/udp",
        _ => "",
    };
    // Ports other services of the project reach; those with a `host` port are also
    // published on the host, for clients outside the project's network.
    let (published, inside): (Vec<&Port>, Vec<&Port>) =
        spec.ports.iter().partition(|p| p.host.is_some());
    if !inside.is_empty() {
        service["expose"] = json!(
            inside
                .iter()
                .map(|p| format!("{}{}", p.port, suffix(p)))
                .collect::<Vec<_>>()
        );
    }
    if !published.is_empty() {
        service["ports"] = json!(
            published
                .iter()
                .map(|p| format!("{}:{}{}", p.host.unwrap_or(p.port), p.port, suffix(p)))
                .collect::<Vec<_>>()
        );
    }
    if !spec.env.is_empty() {
        service["environment"] = json!(spec.env);
    }
    if !spec.volumes.is_empty() {
        service["volumes"] = json!(
            spec.volumes
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{}:{}", volume(i), v.path))
                .collect::<Vec<_>>()
        );
    }
    let mut doc = json!({ "services": { name: service } });
    if !spec.volumes.is_empty() {
        let vols: serde_json::Map<String, Value> = (0..spec.volumes.len())
            .map(|i| (volume(i), json!({})))
            .collect();
        doc["volumes"] = Value::Object(vols);
    }
    serde_saphyr::to_string(&doc)
        .map_err(|e| Problem::new(Code::Io, format!("cannot render {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_kubernetes_quantities() {
        for ok in ["10Gi", "500Mi", "1.5G", "2T", "1024"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["10 GB", "Gi", "", "1.Gi", ".5Gi", "10gb", "1.2.3Gi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn kubernetes_names_follow_rfc_1123() {
        assert_eq!(dns_label("Api_v2.x").as_deref(), Some("api-v2-x"));
        assert_eq!(dns_label("_web-").as_deref(), Some("web"));
        assert_eq!(dns_label("___"), None);
        assert_eq!(label_value("-shop."), "shop");
    }
}
