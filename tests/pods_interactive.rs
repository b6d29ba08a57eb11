//! `rkt run --interactive`: on a terminal (under `script`) the app gets a terminal of its own
//! (stdin, stdout, stderr, `/dev/console` and controlling terminal: a shell has job control and
//! ^C interrupts the app's job, not the pod), with a pipe it reads the pipe; its exit status is
//! `rkt run`'s. Without `--interactive` the app's stdin is `/dev/null`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

/// Runs `rkt --dir DIR --insecure-options=image ARGS...` on a new pseudo-terminal (`script`
/// from bsdutils), typing `input` into it.
fn on_terminal(dir: &Path, args: &[&str], input: &str) -> Output {
    on_terminal_typing(dir, args, input, |_| {})
}

/// [`on_terminal`], then `more(&mut terminal input)` before the input ends.
fn on_terminal_typing(
    dir: &Path,
    args: &[&str],
    input: &str,
    more: impl FnOnce(&mut std::process::ChildStdin),
) -> Output {
    // A terminal size of our choosing, which the app's terminal must have too.
    let mut line = format!(
        "stty rows 33 cols 99; exec '{RKT}' --dir '{}' --insecure-options=image",
        dir.display()
    );
    for a in args {
        assert!(!a.contains('\''), "quote {a} for sh");
        line.push_str(&format!(" '{a}'"));
    }
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (bsdutils)");
    let mut stdin = child.stdin.take().expect("script's stdin");
    stdin.write_all(input.as_bytes()).expect("type into script");
    more(&mut stdin);
    drop(stdin);
    child.wait_with_output().expect("wait for script")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).replace('\r', "")
}

/// `sh -c SCRIPT` as the app of a busybox image (with `tty`).
fn image(tmp: &Path, script: &str) -> std::path::PathBuf {
    busybox_aci(tmp, "interactive", &sh_app(script), |r| {
        for applet in ["tty", "stty"] {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).unwrap();
        }
    })
}

const SCRIPT: &str = r#"
if test -t 0; then echo "stdin: terminal"; else echo "stdin: not a terminal"; fi
echo "tty: $(tty)"
echo "size: $(stty size)"
test -c /dev/console && test -t 0 < /dev/console && echo "console: terminal"
read line
echo "got:[$line]"
read code
exit "$code"
"#;

#[test]
fn interactive_app_reads_the_terminal_and_its_status_is_returned() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = image(tmp.path(), SCRIPT);
    let o = on_terminal(
        &dir,
        &["run", "--interactive", aci.to_str().unwrap()],
        "hello pod\n7\n",
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(7), "{}", describe("rkt run -i", &o));
    assert!(out.contains("stdin: terminal\n"), "{out}");
    assert!(!out.contains("not a tty"), "{out}");
    assert!(out.contains("console: terminal\n"), "{out}");
    assert!(out.contains("got:[hello pod]\n"), "{out}");
    assert!(out.contains("tty: /dev/console\n"), "{out}");
    assert!(out.contains("size: 33 99\n"), "{out}");

    // Another status, to be sure it is the app's.
    let o = on_terminal(
        &dir,
        &["run", "--interactive", aci.to_str().unwrap()],
        "x\n0\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe("rkt run -i", &o));
    assert!(stdout(&o).contains("got:[x]\n"), "{}", stdout(&o));
}

#[test]
fn interactive_app_reads_a_pipe_and_others_read_nothing() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let aci = image(tmp.path(), SCRIPT);
    let run = |interactive: bool| {
        let mut cmd = Command::new(RKT);
        cmd.arg("--dir")
            .arg(&dir)
            .args(["--insecure-options=image", "run"]);
        if interactive {
            cmd.arg("--interactive");
        }
        let mut child = cmd
            .arg(&aci)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The app may exit before reading everything: a broken pipe is fine.
        let _ = stdin.write_all(b"piped line\n5\n");
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let o = run(true);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(5), "{}", describe("rkt run -i", &o));
    assert!(out.contains("stdin: not a terminal\n"), "{out}");
    assert!(out.contains("got:[piped line]\n"), "{out}");

    // Without --interactive the app reads /dev/null: an empty line, then `exit ""` fails.
    let o = run(false);
    let out = stdout(&o);
    assert!(out.contains("got:[]\n"), "{}", describe("rkt run", &o));
    assert_ne!(o.status.code(), Some(5), "{}", describe("rkt run", &o));
}

#[test]
fn control_c_on_the_terminal_stops_the_pod() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let started = tmp.path().join("started");
    let vol = format!("--volume=out,kind=host,source={}", tmp.path().display());
    let app = serde_json::json!({"exec": ["/bin/sh", "-c", "touch /out/started; sleep 60; echo not-interrupted"],
        "user": "0", "group": "0", "mountPoints": [{"name": "out", "path": "/out"}]});
    let aci = busybox_aci(tmp.path(), "sleeper", &app.to_string(), |_| {});
    let o = on_terminal_typing(
        &dir,
        &["run", &vol, "--interactive", aci.to_str().unwrap()],
        "",
        |stdin| {
            wait_for(60, "the app to start", || started.exists());
            stdin.write_all(b"\x03").expect("type ^C");
        },
    );
    assert!(!stdout(&o).contains("not-interrupted"), "{}", stdout(&o));
    // The app's terminal is its own: ^C interrupts the app (SIGINT), not rkt run.
    assert_eq!(o.status.code(), Some(130), "{}", describe("^C", &o));
}

#[test]
fn an_interactive_shell_has_job_control() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let sleeping = tmp.path().join("sleeping");
    let vol = format!("--volume=out,kind=host,source={}", tmp.path().display());
    let app = serde_json::json!({"exec": ["/bin/sh", "-i"], "user": "0", "group": "0",
        "mountPoints": [{"name": "out", "path": "/out"}]});
    let aci = busybox_aci(tmp.path(), "shell", &app.to_string(), |_| {});
    let o = on_terminal_typing(
        &dir,
        &["run", &vol, "--interactive", aci.to_str().unwrap()],
        "touch /out/sleeping; sleep 60; echo sl\"\"ept\n",
        |stdin| {
            wait_for(60, "the shell to run sleep", || sleeping.exists());
            // Give sleep a moment to be the terminal's foreground job.
            std::thread::sleep(std::time::Duration::from_millis(300));
            stdin.write_all(b"\x03").expect("type ^C");
            stdin
                .write_all(b"echo al\"\"ive $(tty)\nexit 4\n")
                .expect("type");
        },
    );
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l == "alive /dev/console"),
        "the shell did not survive ^C: {out}"
    );
    assert!(
        !out.lines().any(|l| l == "slept"),
        "^C did not interrupt sleep: {out}"
    );
    assert_eq!(o.status.code(), Some(4), "{}", describe("sh -i", &o));
}

/// The pid of the process running `rkt` below `script` (pid `script_pid`).
fn rkt_below(script_pid: u32) -> Option<u32> {
    let children =
        std::fs::read_to_string(format!("/proc/{script_pid}/task/{script_pid}/children")).ok()?;
    children.split_whitespace().find_map(|p| p.parse().ok())
}

#[test]
fn window_size_changes_reach_the_app() {
    let (tmp, dir, _cleanup) = pod_scratch();
    let ready = tmp.path().join("ready");
    let vol = format!("--volume=out,kind=host,source={}", tmp.path().display());
    // The app waits (up to 30 s) until its terminal is 44x55.
    let script = r#"touch /out/ready; i=0
        while [ "$(stty size)" != "44 55" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
        echo "size: $(stty size)""#;
    let app = serde_json::json!({"exec": ["/bin/sh", "-c", script], "user": "0", "group": "0",
        "mountPoints": [{"name": "out", "path": "/out"}]});
    let aci = busybox_aci(tmp.path(), "winch", &app.to_string(), |r| {
        std::os::unix::fs::symlink("busybox", r.join("bin/stty")).unwrap();
    });
    let line = format!(
        "exec '{RKT}' --dir '{}' --insecure-options=image run '{vol}' --interactive '{}'",
        dir.display(),
        aci.display()
    );
    let child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (bsdutils)");
    wait_for(60, "the app to start", || ready.exists());
    // Resize rkt run's terminal as a terminal emulator would: the kernel sends SIGWINCH.
    let rkt = rkt_below(child.id()).expect("rkt below script");
    let tty = std::fs::File::open(format!("/proc/{rkt}/fd/0")).expect("rkt run's terminal");
    let size = libc::winsize {
        ws_row: 44,
        ws_col: 55,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSWINSZ reads a valid winsize; the descriptor is open.
    let r = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    drop(tty);
    let o = child.wait_with_output().unwrap();
    assert!(
        stdout(&o).contains("size: 44 55\n"),
        "{}",
        describe("resize", &o)
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe("resize", &o));
}

#[test]
fn without_interactive_the_pod_does_not_share_the_terminals_session() {
    let (tmp, dir, _cleanup) = pod_scratch();
    // Fields 6 and 7 of /proc/self/stat: session (as the pod's PID namespace sees it) and
    // controlling terminal. Sharing rkt run's session, the app would have the host's terminal
    // as its controlling terminal (and could push input into it with TIOCSTI).
    let aci = image(tmp.path(), "cut -d' ' -f6,7 /proc/self/stat");
    let o = on_terminal(&dir, &["run", aci.to_str().unwrap()], "");
    assert!(
        o.status.success(),
        "{}",
        describe("rkt run on a terminal", &o)
    );
    assert_eq!(
        stdout(&o).trim(),
        "1 0",
        "the session of the pod's init, no controlling terminal"
    );
}
