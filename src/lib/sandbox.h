/* sandbox.h: seccomp syscall filters for postd's processes (libseccomp). */
#pragma once

/*
 * The baseline every daemon runs under: the kernel interfaces no mail role has a reason to use
 * (debugging other processes, modules, mounts, namespaces, kexec, bpf, keyrings, clocks...)
 * fail with EPERM. An allow-list profile per role (smtpd: sockets and memory only) builds on it
 * in the hardening issue. Applied before privileges are dropped; as root with CAP_SYS_ADMIN the
 * filter is loaded without no_new_privs (so local's "|command" deliveries may still run setgid
 * postdrop, and SELinux domain transitions stay possible), otherwise with it.
 * Returns 0 or a negative errno (the caller decides whether that is fatal).
 */
int sandbox_apply_baseline(void);

/* The system call names the baseline denies, NULL-terminated (for tests and documentation). */
extern const char *const sandbox_baseline_denied[];
