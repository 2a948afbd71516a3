//! End to end with a real nginx (Debian's package): `rekindle run --validate
//! 'nginx -t'` serves a new config after a swap and keeps the old one after an
//! invalid swap. Needs /usr/sbin/nginx (`apt-get install nginx`), hence ignored
//! in a plain `cargo test`.

mod support;

use std::fs;
use std::path::Path;

use support::{Rekindle, Volume, free_port, http_get, wait_for};

const NGINX: &str = "/usr/sbin/nginx";

/// How many worker processes the nginx master named in `pid_file` has.
fn workers_of(pid_file: &Path) -> usize {
    let Ok(master) = fs::read_to_string(pid_file) else {
        return 0;
    };
    let master = master.trim();
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // `pid (comm) state ppid ...`: the fields after the last ')' are plain.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned))
                .is_some_and(|ppid| ppid == master)
        })
        .count()
}

fn site(port: u16, body: &str) -> String {
    format!("server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"{body}\\n\"; }} }}\n")
}

#[test]
#[ignore = "needs nginx (apt-get install nginx) and the kubelet writer (scripts/provision-k8s.sh)"]
fn nginx_reloads_valid_configs_and_keeps_serving_after_an_invalid_one() {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} is missing: apt-get install nginx"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = tmp.path().join("nginx");
    fs::create_dir_all(prefix.join("logs")).expect("prefix");
    let volume = Volume::new(tmp.path());
    let port = free_port();
    volume.write(&[("site.conf", &site(port, "v1"))]);
    let main = prefix.join("nginx.conf");
    let p = prefix.display();
    fs::write(
        &main,
        format!(
            "user root;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  \
             fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n  \
             include {}/site.conf;\n}}\n",
            volume.dir.display()
        ),
    )
    .expect("nginx.conf");
    let main_s = main.display().to_string();
    let prefix_s = format!("{p}/");
    let validate = format!("{NGINX} -t -q -p {prefix_s} -c {main_s}");
    let rk = Rekindle::start(
        &[
            "run",
            "--watch",
            volume.dir.to_str().expect("utf8"),
            "--validate",
            &validate,
            "--",
            NGINX,
            "-g",
            "daemon off;",
            "-p",
            &prefix_s,
            "-c",
            &main_s,
        ],
        tmp.path(),
    );
    let body = || http_get(port, "/").map(|(_, b)| b.trim().to_owned());
    wait_for("nginx to serve v1", || body().as_deref() == Some("v1"));
    rk.wait_log("watching", 1);

    volume.write(&[("site.conf", &site(port, "v2"))]);
    wait_for("nginx to serve v2", || body().as_deref() == Some("v2"));
    rk.wait_log("config change applied", 1);
    // After SIGHUP the old worker keeps accepting until it has handled its QUIT: only
    // once it is gone does every connection reach the new config.
    let pid_file = prefix.join("nginx.pid");
    wait_for("the old nginx worker to exit", || {
        workers_of(&pid_file) == 1
    });

    volume.write(&[(
        "site.conf",
        &format!("server {{ listen 127.0.0.1:{port}; no_such_directive; }}\n"),
    )]);
    rk.wait_log("validation failed", 1);
    assert!(
        rk.log_text().contains("no_such_directive"),
        "{}",
        rk.log_text()
    );
    assert_eq!(body().as_deref(), Some("v2"));

    volume.write(&[("site.conf", &site(port, "v3"))]);
    wait_for("nginx to serve v3", || body().as_deref() == Some("v3"));
    rk.wait_log("config change applied", 2);
}
