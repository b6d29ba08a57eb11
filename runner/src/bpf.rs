//! Classic-BPF seccomp programs that sort system calls into two sets: the listed calls and the
//! rest. The listed numbers are found by binary search, not one comparison each: when a filter
//! is installed the kernel runs it for every system call number (to cache the calls it always
//! allows), and a linear list of 70 comparisons made that a tenth of a millisecond of every
//! pod start; each filtered call the app makes runs it too.
//!
//! The program checks the architecture first (calls of another one — 32-bit calls on a 64-bit
//! host — kill the process, as a filter written for one architecture's numbers must) and, on
//! x86_64, refuses the x32 ABI's numbers (bit 30 set), which would otherwise reach the same
//! kernel functions under numbers the list does not name.

use libc::sock_filter;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
/// `__X32_SYSCALL_BIT`.
const X32_BIT: u32 = 0x4000_0000;
/// Listed calls compared one by one at the leaves of the search.
const LEAF: usize = 8;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// The `AUDIT_ARCH_*` value of this build's architecture, if filters are supported on it.
pub fn native_arch() -> Option<u32> {
    match std::env::consts::ARCH {
        "x86_64" => Some(0xC000_003E),
        "aarch64" => Some(0xC000_00B7),
        "riscv64" => Some(0xC000_00F3),
        _ => None,
    }
}

/// What a program does with a call: a `SECCOMP_RET_*` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action(pub u32);

impl Action {
    pub const ALLOW: Action = Action(libc::SECCOMP_RET_ALLOW);
    pub const KILL_PROCESS: Action = Action(libc::SECCOMP_RET_KILL_PROCESS);

    pub fn errno(errno: u16) -> Action {
        Action(libc::SECCOMP_RET_ERRNO | u32::from(errno))
    }
}

/// A program for `arch` (an `AUDIT_ARCH_*` value): `listed` calls get `on_listed`, the others
/// `otherwise`; x32 numbers on x86_64 get `refused`.
pub fn program(
    arch: u32,
    listed: &[u32],
    on_listed: Action,
    otherwise: Action,
    refused: Action,
) -> Vec<sock_filter> {
    let mut nrs = listed.to_vec();
    nrs.sort_unstable();
    nrs.dedup();
    let mut prog = vec![
        stmt(LD_W_ABS, ARCH_OFFSET),
        jump(JEQ, arch, 1, 0),
        stmt(RET, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, NR_OFFSET),
    ];
    if arch == 0xC000_003E {
        prog.push(jump(JGE, X32_BIT, 0, 1));
        prog.push(stmt(RET, refused.0));
    }
    prog.extend(search(&nrs, on_listed, otherwise));
    prog
}

/// Code that returns `on_listed` if the accumulator is one of `nrs` (sorted), else `otherwise`.
fn search(nrs: &[u32], on_listed: Action, otherwise: Action) -> Vec<sock_filter> {
    if nrs.len() <= LEAF {
        // JEQ n1 … JEQ nk (each jumping to the last instruction), RET otherwise, RET on_listed.
        let k = nrs.len();
        let mut code: Vec<sock_filter> = nrs
            .iter()
            .enumerate()
            .map(|(i, &n)| jump(JEQ, n, (k - i) as u8, 0))
            .collect();
        code.push(stmt(RET, otherwise.0));
        code.push(stmt(RET, on_listed.0));
        return code;
    }
    let mid = nrs.len() / 2;
    let below = search(&nrs[..mid], on_listed, otherwise);
    let above = search(&nrs[mid..], on_listed, otherwise);
    let mut code = Vec::with_capacity(below.len() + above.len() + 2);
    match u8::try_from(below.len()) {
        // A conditional jump reaches at most 255 instructions ahead.
        Ok(skip) => code.push(jump(JGE, nrs[mid], skip, 0)),
        Err(_) => {
            code.push(jump(JGE, nrs[mid], 0, 1));
            code.push(stmt(JA, below.len() as u32));
        }
    }
    code.extend(below);
    code.extend(above);
    code
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86_64: u32 = 0xC000_003E;

    /// What the kernel would return for (`arch`, `nr`), and after how many instructions: a
    /// classic-BPF interpreter for the instructions [`program`] emits.
    fn steps(prog: &[sock_filter], arch: u32, nr: u32) -> (u32, usize) {
        let (mut pc, mut acc) = (0usize, 0u32);
        for step in 1..=prog.len() {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = if i.k == ARCH_OFFSET { arch } else { nr },
                JEQ => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                JGE => pc += usize::from(if acc >= i.k { i.jt } else { i.jf }),
                JA => pc += i.k as usize,
                RET => return (i.k, step),
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
        panic!("the program ran off its end or looped");
    }

    fn run(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        steps(prog, arch, nr).0
    }

    #[test]
    fn every_number_gets_its_action() {
        let refuse = Action::errno(1);
        for listed in [
            vec![],
            vec![7],
            vec![0, 1, 2, 3, 4, 5, 6, 7, 8],
            (0..400).step_by(3).collect::<Vec<_>>(),
            vec![165, 166, 169, 155, 272, 308, 321, 175, 176, 313, 246, 320],
        ] {
            for (on, other) in [(refuse, Action::ALLOW), (Action::ALLOW, refuse)] {
                let prog = program(X86_64, &listed, on, other, refuse);
                assert!(prog.len() < 4096, "the kernel's limit");
                for nr in 0..1024 {
                    let want = if listed.contains(&nr) { on } else { other };
                    assert_eq!(run(&prog, X86_64, nr), want.0, "nr {nr} of {listed:?}");
                }
                assert_eq!(run(&prog, X86_64, X32_BIT | 165), refuse.0, "x32");
                assert_eq!(
                    run(&prog, 0x4000_0003, 21),
                    libc::SECCOMP_RET_KILL_PROCESS,
                    "i386 calls"
                );
            }
        }
    }

    #[test]
    fn long_lists_take_few_comparisons() {
        let listed: Vec<u32> = (0..450).collect();
        let (allow, kill) = (Action::ALLOW, Action::KILL_PROCESS);
        let prog = program(X86_64, &listed, allow, kill, kill);
        // Far jumps (over more than 255 instructions) are taken with JA.
        assert!(prog.iter().any(|i| i.code == JA));
        let mut longest = 0;
        for nr in 0..1024 {
            let want = if nr < 450 { allow } else { kill };
            let (got, n) = steps(&prog, X86_64, nr);
            assert_eq!(got, want.0, "nr {nr}");
            longest = longest.max(n);
        }
        // The header, about log2(450 / LEAF) range checks (and their JAs), one leaf.
        assert!(longest <= 6 + 2 * 7 + LEAF + 1, "{longest} instructions");
    }
}
