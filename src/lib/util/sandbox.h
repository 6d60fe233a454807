/* sandbox.h: seccomp syscall filters for postd's processes (libseccomp). */
#pragma once

#include <stdbool.h>

/*
 * The baseline every daemon runs under: the kernel interfaces no mail role has a reason to use
 * (debugging other processes, modules, mounts, namespaces, kexec, bpf, keyrings, clocks...)
 * fail with EPERM. Applied before privileges are dropped; as root with CAP_SYS_ADMIN the
 * filter is loaded without no_new_privs (so local's "|command" deliveries may still run setgid
 * postdrop, and SELinux domain transitions stay possible), otherwise with it.
 * Returns 0 or a negative errno (the caller decides whether that is fatal).
 */
int sandbox_apply_baseline(void);

/* The system call names the baseline denies, NULL-terminated (for tests and documentation). */
extern const char *const sandbox_baseline_denied[];

/*
 * The allow-list of a role (the daemon's name: "smtpd", "cleanup", "qmgr", "local"...), stacked on
 * the baseline once the daemon is initialised and before it reads its first untrusted byte: every
 * call outside the role's groups is refused and ends the whole process with SIGSYS, see
 * docs/PRIVILEGES.md (the kernel traps it; a handler hands its number to report, when set, then the
 * process dies of SIGSYS as under a plain kill action). Applies to
 * every thread (TSYNC). A role with no entry (an operator's own command in master.cf) keeps the
 * baseline only. log_only: record what would be killed in the kernel's audit log instead (to
 * collect a role's calls; sanitizer builds always do, their runtime makes calls no role needs).
 * Returns 0 (also for an unknown role), or a negative errno.
 */
int sandbox_apply_role(const char *role, bool log_only);

/* Called from the SIGSYS handler with the refused call's number: must be async-signal-safe. */
void sandbox_set_violation_report(void (*report)(int syscall_nr));

/* A system call's name on this architecture (malloc'd), or NULL. */
char *sandbox_syscall_name(int syscall_nr);

/* Whether a role has an allow-list; its call groups as a text ("memory time ... exec") or NULL. */
const char *sandbox_role_groups(const char *role);
