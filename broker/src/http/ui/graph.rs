//! A workflow drawn as SVG: nodes in columns by depth (the longest chain of parents before
//! them), left to right, edges from each parent to its child. Laid out on the server; the
//! page's script only recolours nodes as their jobs move.

use std::collections::HashMap;

use serde_json::Value;

/// A node box's width and height (px).
pub(super) const NODE_W: u32 = 150;
pub(super) const NODE_H: u32 = 52;
const GAP_X: u32 = 70;
const GAP_Y: u32 = 22;
const MARGIN: u32 = 16;

/// One node where it is drawn.
pub(super) struct Node {
    pub(super) name: String,
    pub(super) job: u64,
    pub(super) status: String,
    pub(super) x: u32,
    pub(super) y: u32,
}

/// The drawing: its size, nodes, and edges as (x1, y1, x2, y2).
pub(super) struct Graph {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) nodes: Vec<Node>,
    pub(super) edges: Vec<(u32, u32, u32, u32)>,
}

/// Lays out the `runs` of a workflow view (`http::workflows::view`): node, job, status,
/// depends_on (node names).
pub(super) fn layout(runs: &Value) -> Graph {
    let runs: Vec<&Value> = runs
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let name = |r: &Value| r["node"].as_str().unwrap_or("?").to_string();
    let parents = |r: &Value| -> Vec<String> {
        r["depends_on"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Depth by relaxation: at most one pass per node (a workflow is acyclic by construction).
    let mut depth: HashMap<String, u32> = runs.iter().map(|r| (name(r), 0)).collect();
    for _ in 0..runs.len() {
        let mut changed = false;
        for r in &runs {
            let d = parents(r)
                .iter()
                .filter_map(|p| depth.get(p).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            if depth.get(&name(r)).copied().unwrap_or(0) < d {
                depth.insert(name(r), d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows: HashMap<u32, u32> = HashMap::new();
    let mut at: HashMap<String, (u32, u32)> = HashMap::new();
    let mut nodes = Vec::new();
    for r in &runs {
        let d = depth.get(&name(r)).copied().unwrap_or(0);
        let row = rows.entry(d).or_insert(0);
        let (x, y) = (
            MARGIN + d * (NODE_W + GAP_X),
            MARGIN + *row * (NODE_H + GAP_Y),
        );
        *row += 1;
        at.insert(name(r), (x, y));
        nodes.push(Node {
            name: name(r),
            job: r["job"].as_u64().unwrap_or(0),
            status: r["status"].as_str().unwrap_or("").to_string(),
            x,
            y,
        });
    }
    let mut edges = Vec::new();
    for r in &runs {
        let Some(&(cx, cy)) = at.get(&name(r)) else {
            continue;
        };
        for p in parents(r) {
            if let Some(&(px, py)) = at.get(&p) {
                edges.push((px + NODE_W, py + NODE_H / 2, cx, cy + NODE_H / 2));
            }
        }
    }
    let cols = depth.values().max().map_or(1, |d| d + 1);
    let most_rows = rows.values().max().copied().unwrap_or(1);
    Graph {
        width: 2 * MARGIN + cols * NODE_W + cols.saturating_sub(1) * GAP_X,
        height: 2 * MARGIN + most_rows * NODE_H + most_rows.saturating_sub(1) * GAP_Y,
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn children_sit_right_of_their_deepest_parent() {
        let runs = json!([
            {"node": "a", "job": 1, "status": "COMPLETED", "depends_on": []},
            {"node": "b", "job": 2, "status": "RUNNING", "depends_on": ["a"]},
            {"node": "c", "job": 3, "status": "SCHEDULED", "depends_on": ["a", "b"]},
        ]);
        let g = super::layout(&runs);
        let x: Vec<u32> = g.nodes.iter().map(|n| n.x).collect();
        assert!(x[0] < x[1] && x[1] < x[2], "{x:?}");
        assert_eq!(g.edges.len(), 3);
        assert!(g.width >= x[2] + super::NODE_W);
    }
}
