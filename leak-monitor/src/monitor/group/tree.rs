//! Pools found from the process tree: a followed Python process and the followed Python
//! processes it forked (a pre-fork master and its workers: gunicorn, uWSGI, celery prefork, a
//! `multiprocessing` pool) are one group without `--match`, named from the master. Pure: the
//! fleet passes what it knows of its targets and applies the names this returns.

use crate::targets::{GroupSource, TargetId};
use std::collections::BTreeMap;
use std::path::Path;

/// What the tree grouping needs of one followed target.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeNode {
    pub id: TargetId,
    pub ppid: i32,
    pub python: bool,
    pub group: String,
    pub source: GroupSource,
    pub cmdline: Vec<String>,
}

/// Parent links followed at most this far up (a fork server between master and workers is one
/// more; a cycle through a reused PID ends here).
const MAX_DEPTH: usize = 8;

/// A target's place in a pool: its pool's master (topmost followed Python ancestor) and the
/// name the master gives the pool.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolMember {
    pub id: TargetId,
    pub master: TargetId,
    pub name: String,
}

/// The pool of each Python target with a followed Python parent, and of that parent. The pool
/// is named by its master: its `--match` name when it has one, else its program's name. A
/// target named by a selector itself is left out (it keeps its name).
pub fn pool_groups(nodes: &[TreeNode]) -> Vec<PoolMember> {
    let python: BTreeMap<i32, &TreeNode> = nodes
        .iter()
        .filter(|n| n.python)
        .map(|n| (n.id.pid, n))
        .collect();
    let parent_of = |node: &TreeNode| {
        python
            .get(&node.ppid)
            .copied()
            .filter(|p| p.id != node.id && p.id.start_ticks <= node.id.start_ticks)
    };
    let mut named = Vec::new();
    for node in python.values() {
        let Some(mut root) = parent_of(node) else {
            continue;
        };
        for _ in 0..MAX_DEPTH {
            match parent_of(root) {
                Some(up) => root = up,
                None => break,
            }
        }
        let name = match root.source {
            GroupSource::Match => root.group.clone(),
            GroupSource::Parent | GroupSource::Process => program_name(&root.cmdline)
                .unwrap_or(&root.group)
                .to_string(),
        };
        for member in [*node, root] {
            if member.source != GroupSource::Match
                && !named.iter().any(|m: &PoolMember| m.id == member.id)
            {
                named.push(PoolMember {
                    id: member.id,
                    master: root.id,
                    name: name.clone(),
                });
            }
        }
    }
    named
}

/// The program a command line runs: `gunicorn` for `python3 -m gunicorn ...`,
/// `/venv/bin/gunicorn ...` or `gunicorn: master [app]`; `app.py` for `python3 -u app.py`.
/// None when it runs code from `-c` or stdin.
pub fn program_name(cmdline: &[String]) -> Option<&str> {
    let first = cmdline.first()?;
    // A process title set by the program (setproctitle): "gunicorn: worker [app]".
    let argv0 = first
        .split(|c: char| c == ':' || c.is_whitespace())
        .next()
        .unwrap_or(first);
    let base = basename(argv0);
    if !base.starts_with("python") {
        return (!base.is_empty()).then_some(base);
    }
    let mut args = cmdline[1..].iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-m" => return args.next().map(|m| m.split('.').next().unwrap_or(m)),
            "-c" | "-" => return None,
            // Options that take a value as the next argument.
            "-W" | "-X" | "-Q" => {
                args.next();
            }
            option if option.starts_with("-m") && option.len() > 2 => {
                let module = &option[2..];
                return Some(module.split('.').next().unwrap_or(module));
            }
            option if option.starts_with('-') => {}
            script => return Some(basename(script)),
        }
    }
    None
}

fn basename(path: &str) -> &str {
    Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    fn node(pid: i32, ppid: i32, start: u64, line: &str, python: bool) -> TreeNode {
        TreeNode {
            id: TargetId {
                pid,
                start_ticks: start,
            },
            ppid,
            python,
            group: "python3".to_string(),
            source: GroupSource::Process,
            cmdline: args(line),
        }
    }

    fn names(nodes: &[TreeNode]) -> Vec<(i32, String)> {
        let mut named: Vec<(i32, String)> = pool_groups(nodes)
            .into_iter()
            .map(|m| (m.id.pid, m.name))
            .collect();
        named.sort();
        named
    }

    #[test]
    fn programs_are_named_as_their_users_know_them() {
        let cases = [
            ("python3 -m gunicorn --workers 2 app:app", Some("gunicorn")),
            ("/venv/bin/gunicorn --workers 2 app:app", Some("gunicorn")),
            ("gunicorn: worker [app]", Some("gunicorn")),
            (
                "/usr/bin/python3.11 -u -X dev /srv/pool_app.py --n 4",
                Some("pool_app.py"),
            ),
            ("python3 -mcelery.bin worker", Some("celery")),
            ("uwsgi --ini app.ini", Some("uwsgi")),
            ("python3 -c import os", None),
            ("python3", None),
        ];
        for (line, want) in cases {
            assert_eq!(program_name(&args(line)), want, "{line}");
        }
    }

    #[test]
    fn a_master_and_its_workers_are_one_pool_named_from_the_master() {
        let nodes = [
            node(10, 1, 100, "python3 -m gunicorn --workers 2 app:app", true),
            node(11, 10, 105, "python3 -m gunicorn --workers 2 app:app", true),
            node(12, 10, 106, "python3 -m gunicorn --workers 2 app:app", true),
            // Alone: a Python process whose parent is not followed.
            node(20, 1, 100, "python3 other.py", true),
            // A shell the master started is not Python.
            node(13, 10, 107, "sh -c date", false),
        ];
        assert_eq!(
            names(&nodes),
            [
                (10, "gunicorn".to_string()),
                (11, "gunicorn".to_string()),
                (12, "gunicorn".to_string()),
            ]
        );
    }

    #[test]
    fn a_fork_server_between_master_and_workers_keeps_one_pool() {
        let nodes = [
            node(10, 1, 100, "python3 pool_app.py", true),
            node(
                11,
                10,
                101,
                "python3 -c from multiprocessing.forkserver import main",
                true,
            ),
            node(
                12,
                11,
                102,
                "python3 -c from multiprocessing.forkserver import main",
                true,
            ),
        ];
        let named = names(&nodes);
        assert!(named.iter().all(|(_, n)| n == "pool_app.py"), "{named:?}");
        assert_eq!(named.len(), 3);
    }

    #[test]
    fn a_match_name_wins_and_names_the_pool_of_its_children() {
        let mut master = node(10, 1, 100, "python3 -m celery worker", true);
        master.group = "jobs".to_string();
        master.source = GroupSource::Match;
        let nodes = [master, node(11, 10, 101, "python3 -m celery worker", true)];
        // The master keeps its name (it is not renamed); the worker joins it.
        assert_eq!(names(&nodes), [(11, "jobs".to_string())]);
    }

    #[test]
    fn a_reused_pid_is_not_a_parent() {
        // pid 10 started after its "child": the child's real parent ended and the PID was
        // reused.
        let nodes = [
            node(10, 1, 200, "python3 a.py", true),
            node(11, 10, 150, "python3 b.py", true),
        ];
        assert!(names(&nodes).is_empty());
    }
}
