//! Network objects in Docker's shapes: `network ls` rows (NETWORK ID, NAME,
//! DRIVER, SCOPE) and `network inspect` JSON.

use rswarm_proto::types::Network;
use serde_json::{json, Value};

use super::humanize::rfc3339_nano;
use super::output::{render_list, ListFormat};
use super::table::HeaderNames;
use super::FormatError;

pub const NETWORK_LS: ListFormat<'static> = ListFormat {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    headers: HeaderNames::new(&[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
    ]),
    row_type: "network",
};

fn name(n: &Network) -> String {
    n.spec
        .as_ref()
        .and_then(|s| s.annotations.as_ref())
        .map(|a| a.name.clone())
        .unwrap_or_default()
}

pub fn network_ls_row(n: &Network, no_trunc: bool) -> Value {
    let id = if no_trunc {
        n.id.clone()
    } else {
        n.id.chars().take(12).collect()
    };
    json!({
        "ID": id,
        "Name": name(n),
        "Driver": n.spec.as_ref().map(|s| s.driver.clone()).filter(|d| !d.is_empty()).unwrap_or_else(|| "overlay".into()),
        "Scope": "swarm",
        "Internal": n.spec.as_ref().map(|s| s.internal).unwrap_or(false),
        "Labels": n.spec.as_ref().and_then(|s| s.annotations.as_ref()).map(|a| a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")).unwrap_or_default(),
    })
}

pub fn render_network_list(
    nets: &[Network],
    format: Option<&str>,
    quiet: bool,
    no_trunc: bool,
) -> Result<String, FormatError> {
    let mut sorted: Vec<&Network> = nets.iter().collect();
    sorted.sort_by_key(|n| name(n));
    let rows: Vec<Value> = sorted.iter().map(|n| network_ls_row(n, no_trunc)).collect();
    render_list(&rows, format, quiet, &NETWORK_LS)
}

/// `docker network inspect`'s shape.
pub fn network_inspect_json(n: &Network) -> Value {
    let spec = n.spec.clone().unwrap_or_default();
    let ipam: Vec<Value> = n
        .ipam
        .iter()
        .map(|c| {
            let mut v = json!({"Subnet": c.subnet, "Gateway": c.gateway});
            if !c.ip_range.is_empty() {
                v["IPRange"] = json!(c.ip_range);
            }
            v
        })
        .collect();
    let mut options = serde_json::Map::new();
    options.insert(
        "com.docker.network.driver.overlay.vxlanid_list".into(),
        json!(n.vni.to_string()),
    );
    for (k, v) in &spec.options {
        options.insert(k.clone(), json!(v));
    }
    json!({
        "Name": name(n),
        "Id": n.id,
        "Created": rfc3339_nano(n.meta.as_ref().map(|m| m.created_at).unwrap_or(0)),
        "Scope": "swarm",
        "Driver": if spec.driver.is_empty() { "overlay".to_string() } else { spec.driver.clone() },
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": ipam},
        "Internal": spec.internal,
        "Attachable": spec.attachable,
        "Ingress": spec.ingress,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": null,
        "Options": options,
        "Labels": spec.annotations.map(|a| a.labels).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rswarm_proto::types::{Annotations, IpamConfig, NetworkSpec};

    fn net() -> Network {
        Network {
            id: "abcdefghijklmnopqrstuvwxy".into(),
            spec: Some(NetworkSpec {
                annotations: Some(Annotations {
                    name: "backend".into(),
                    labels: Default::default(),
                }),
                driver: "overlay".into(),
                ..Default::default()
            }),
            ipam: vec![IpamConfig {
                subnet: "10.20.0.0/24".into(),
                gateway: "10.20.0.1".into(),
                ip_range: String::new(),
            }],
            vni: 4097,
            ..Default::default()
        }
    }

    #[test]
    fn ls_table() {
        let out = render_network_list(&[net()], None, false, false).unwrap();
        assert_eq!(
            out,
            "NETWORK ID     NAME      DRIVER    SCOPE\nabcdefghijkl   backend   overlay   swarm\n"
        );
    }

    #[test]
    fn inspect_shape() {
        let v = network_inspect_json(&net());
        assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "10.20.0.0/24");
        assert_eq!(
            v["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
            "4097"
        );
        assert_eq!(v["Scope"], "swarm");
    }
}
