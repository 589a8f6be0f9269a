//! `flare.xml`: the node map in the Boost.Serialization XML format of
//! flarei 1.x (cluster.md §1.5). [`render`] writes byte for byte what flarei
//! 1.3.4 (Boost 1.74) writes; flarei saves its state with it and
//! `flare-admin index` prints it. Reading it back is flarei's business.

use flare_proto::node::NodeLine;

/// Boost's archive version written in the header (Boost 1.74 writes 18).
const ARCHIVE_VERSION: u32 = 18;

/// The document for a node map of `version` with `nodes` (in node-key
/// order) and the next thread type to hand out.
pub fn render<'a>(
    version: u64,
    nodes: impl IntoIterator<Item = &'a NodeLine>,
    next_thread_type: i32,
) -> String {
    let nodes: Vec<&NodeLine> = nodes.into_iter().collect();
    let mut s = String::with_capacity(512 + nodes.len() * 512);
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\" ?>\n");
    s.push_str("<!DOCTYPE boost_serialization>\n");
    s.push_str(&format!(
        "<boost_serialization signature=\"serialization::archive\" version=\"{ARCHIVE_VERSION}\">\n"
    ));
    s.push_str(&format!("<version>{}</version>\n", version));
    s.push_str("<node_map class_id=\"0\" tracking_level=\"0\" version=\"0\">\n");
    s.push_str(&format!("\t<count>{}</count>\n", nodes.len()));
    s.push_str("\t<item_version>0</item_version>\n");
    for (i, n) in nodes.iter().enumerate() {
        let first = i == 0;
        if first {
            s.push_str("\t<item class_id=\"1\" tracking_level=\"0\" version=\"0\">\n");
        } else {
            s.push_str("\t<item>\n");
        }
        s.push_str(&format!("\t\t<first>{}</first>\n", escape(&n.key())));
        if first {
            s.push_str("\t\t<second class_id=\"2\" tracking_level=\"0\" version=\"0\">\n");
        } else {
            s.push_str("\t\t<second>\n");
        }
        let fields: [(&str, String); 7] = [
            ("node_server_name", escape(&n.name)),
            ("node_server_port", n.port.to_string()),
            ("node_role", n.role.number().to_string()),
            ("node_state", n.state.number().to_string()),
            ("node_partition", n.partition.to_string()),
            ("node_balance", n.balance.to_string()),
            ("node_thread_type", n.thread_type.to_string()),
        ];
        for (tag, value) in fields {
            s.push_str(&format!("\t\t\t<{tag}>{value}</{tag}>\n"));
        }
        s.push_str("\t\t</second>\n");
        s.push_str("\t</item>\n");
    }
    s.push_str("</node_map>\n");
    s.push_str(&format!(
        "<thread_type>{}</thread_type>\n",
        next_thread_type
    ));
    s.push_str("</boost_serialization>\n\n");
    s
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
