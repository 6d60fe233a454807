/* sandbox.c: the seccomp baseline filter and the per-role allow-lists (see sandbox.h for what and why). */
#include "sandbox.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "macro.h"

/* LeakSanitizer stops the process's threads with ptrace at exit: a sanitizer build keeps it. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif

const char *const sandbox_baseline_denied[] = {
#ifndef SANDBOX_SANITIZER
        "ptrace",
#endif
        "process_vm_readv", "process_vm_writev", "kcmp",
        /* kernel and boot */
        "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
        /* file systems and namespaces */
        "mount", "umount2", "pivot_root", "swapon", "swapoff", "unshare", "setns", "open_by_handle_at",
        "name_to_handle_at", "quotactl", "acct",
        /* clocks, ports, tracing and other kernel interfaces */
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "bpf",
        "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "lookup_dcookie", NULL};

static int load_baseline(bool no_new_privs)
{
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, no_new_privs ? 1 : 0);
        for (size_t i = 0; r == 0 && sandbox_baseline_denied[i]; i++) {
                int nr = seccomp_syscall_resolve_name(sandbox_baseline_denied[i]);
                if (nr == __NR_SCMP_ERROR)
                        continue; /* not on this architecture */
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
        }
        if (r == 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}

int sandbox_apply_baseline(void)
{
        /* Without no_new_privs the kernel wants CAP_SYS_ADMIN, which a hardened unit's
         * CapabilityBoundingSet takes away even from root: then no_new_privs it is. */
        if (geteuid() == 0) {
                int r = load_baseline(false);
                if (r != -EACCES && r != -EPERM)
                        return r;
        }
        return load_baseline(true);
}

/*
 * The allow-lists. A role is a set of call groups; each group is a list of names (resolved at run
 * time, a name this architecture lacks is skipped) plus the argument-filtered rules in add_group().
 * What every group is for, and which role has which, is the matrix in docs/PRIVILEGES.md: change
 * both together.
 */
enum {
        G_CORE = 1 << 0,    /* memory, threads, time, signals, event loop, descriptors, read-only files,
                               unix sockets (IPC with the other roles, the journal) */
        G_WRITE = 1 << 1,   /* create, write, rename, remove files (queue, logs, mailboxes) */
        G_DNS = 1 << 2,     /* UDP sockets for the resolver, netlink for getaddrinfo */
        G_INET = 1 << 3,    /* TCP/UDP sockets of both families, bind (the SMTP/LMTP client) */
        G_PROC = 1 << 4,    /* fork, wait, kill: children that switch to a recipient (local); never execve */
        G_SETID = 1 << 5,   /* switch to the recipient's uid and gids (local) */
        G_CONNECT = 1 << 6, /* TCP client sockets of both families, no bind or listen (smtpd_proxy_filter,
                               cleanup's inet: milters) */
};

static const char *const group_core[] = {
        /* memory */
        "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "membarrier",
        /* threads (clone itself is filtered in add_group) */
        "futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
        "sched_yield", "sched_getaffinity", "getcpu",
        /* time */
        "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
        "timerfd_create", "timerfd_settime", "timerfd_gettime",
        /* signals (of its own threads only: kill is in the process group) */
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
        "rt_sigsuspend", "sigaltstack", "signalfd", "signalfd4", "tgkill", "tkill",
        /* the event loop */
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll",
        "ppoll", "select", "pselect6", "eventfd", "eventfd2",
        /* descriptors */
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
        "pwritev2", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "lseek", "pipe", "pipe2",
        "sendfile", "flock",
        /* file metadata and reading (open itself is filtered in add_group) */
        "fstat", "newfstatat", "stat", "lstat", "statx", "access", "faccessat", "faccessat2", "readlink",
        "readlinkat", "getdents64", "getcwd", "fstatfs", "statfs", "fadvise64",
        /* identity and limits */
        "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
        "getresgid", "getpgrp", "prlimit64", "getrlimit", "getrusage", "uname", "sysinfo", "umask",
        "getrandom", "exit", "exit_group", "restart_syscall",
        /* sockets: socket() and socketpair() are filtered by domain in add_group */
        "connect", "accept", "accept4", "sendmsg", "sendmmsg", "sendto", "recvmsg", "recvmmsg", "recvfrom",
        "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername",
        /* the journal passes a large entry as a sealed memfd */
        "memfd_create",
        /* making durable what is already written changes nothing: smtpd syncs the queue directory of a
         * message whose cleanup died after the commit (proto/cleanup_submit.c) */
        "fsync", "fdatasync", NULL};

static const char *const group_write[] = {
        "rename", "renameat",  "renameat2", "unlink",    "unlinkat",  "mkdir",  "mkdirat",         "rmdir",
        "link",   "linkat",    "fchmod",    "fchmodat",  "chmod",     "fchown", "fchownat",        "chown",
        "lchown", "ftruncate", "truncate",  "fallocate", "utimensat", "utimes", "sync_file_range", NULL};

static const char *const group_inet[] = {"bind", "listen", NULL};

static const char *const group_proc[] = {"fork",
                                         "vfork",
                                         "wait4",
                                         "waitid",
                                         "kill",
                                         "setsid",
                                         "setpgid",
                                         "getpgid",
                                         "getsid",
                                         "chdir",
                                         "fchdir",
                                         "pidfd_open",
                                         "pidfd_send_signal",
                                         NULL};

static const char *const group_setid[] = {"setuid",    "setgid",   "setgroups", "setresuid",
                                          "setresgid", "setreuid", "setregid",  "setfsuid",
                                          "setfsgid",  "capget",   "capset",    NULL};

static const struct sandbox_role {
        const char *name;
        unsigned groups;
} roles[] = {
        {"smtpd", G_CORE | G_DNS},
        /* smtpd_sasl_path = inet:host:port: Dovecot's auth service over TCP (smtpd/main.c chooses it) */
        {"smtpd-sasl-inet", G_CORE | G_DNS | G_INET},
        /* smtpd_proxy_filter = host:port: one outgoing TCP connection per transaction (smtpd/proxy.c) */
        {"smtpd-proxy-inet", G_CORE | G_DNS | G_CONNECT},
        {"cleanup", G_CORE | G_WRITE},
        /* smtpd_milters / non_smtpd_milters with an inet: filter (cleanup/main.c chooses it); DNS for a
         * filter named by host name */
        {"cleanup-milter", G_CORE | G_WRITE | G_DNS | G_CONNECT},
        {"qmgr", G_CORE | G_WRITE},
        {"smtp", G_CORE | G_WRITE | G_DNS | G_INET},
        {"lmtp", G_CORE | G_WRITE | G_DNS | G_INET}, /* the smtp program in LMTP mode */
        /* switches to each mailbox's owner (virtual_uid_maps) around the delivery */
        {"virtual", G_CORE | G_WRITE | G_SETID},
        /* Its |command and mailbox_command deliveries are arbitrary programs (a shell, procmail...): the
         * spawner forked before this list (local/spawn.c) starts them, so local itself has no execve. */
        {"local", G_CORE | G_WRITE | G_SETID | G_PROC},
        {"pickup", G_CORE | G_WRITE},
        {"bounce", G_CORE | G_WRITE},
        {"discard", G_CORE | G_WRITE},
        {"error", G_CORE | G_WRITE},
        {"showq", G_CORE},
        {"metrics", G_CORE},
        /* counts in memory only: unix sockets and the event loop */
        {"anvil", G_CORE},
};

static const struct sandbox_role *find_role(const char *name)
{
        for (size_t i = 0; name && i < ELEMENTSOF(roles); i++)
                if (streq(roles[i].name, name))
                        return &roles[i];
        return NULL;
}

const char *sandbox_role_groups(const char *role)
{
        /* In the order of the G_ bits. */
        static const char *const names[] = {"core", "write", "dns", "inet", "proc", "setid", "connect"};
        static char text[64];
        const struct sandbox_role *r = find_role(role);
        if (!r)
                return NULL;
        text[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (r->groups & (1u << i)) {
                        if (text[0])
                                strcat(text, " ");
                        strcat(text, names[i]);
                }
        return text;
}

static int allow_names(scmp_filter_ctx ctx, const char *const *names)
{
        for (size_t i = 0; names[i]; i++) {
                int nr = seccomp_syscall_resolve_name(names[i]);
                if (nr == __NR_SCMP_ERROR)
                        continue;
                int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* One rule on one argument; a call this architecture lacks is skipped. */
static int rule1(scmp_filter_ctx ctx, uint32_t action, const char *name, struct scmp_arg_cmp a)
{
        int nr = seccomp_syscall_resolve_name(name);
        return nr == __NR_SCMP_ERROR ? 0 : seccomp_rule_add(ctx, action, nr, 1, a);
}

static int rule0(scmp_filter_ctx ctx, uint32_t action, const char *name)
{
        int nr = seccomp_syscall_resolve_name(name);
        return nr == __NR_SCMP_ERROR ? 0 : seccomp_rule_add(ctx, action, nr, 0);
}

static int rule2(scmp_filter_ctx ctx, uint32_t action, const char *name, struct scmp_arg_cmp a,
                 struct scmp_arg_cmp b)
{
        int nr = seccomp_syscall_resolve_name(name);
        return nr == __NR_SCMP_ERROR ? 0 : seccomp_rule_add(ctx, action, nr, 2, a, b);
}

#define SOCK_TYPE_MASK 0xf /* socket()'s type without SOCK_NONBLOCK and SOCK_CLOEXEC */
/* libseccomp's SCMP_A0() and friends leave datum_b out, which clang's -Wmissing-field-initializers refuses.
 */
#define ARG_EQ(n, v) ((struct scmp_arg_cmp){.arg = (n), .op = SCMP_CMP_EQ, .datum_a = (v), .datum_b = 0})
#define ARG_MASKED(n, mask, v) \
        ((struct scmp_arg_cmp){.arg = (n), .op = SCMP_CMP_MASKED_EQ, .datum_a = (mask), .datum_b = (v)})
#define OPEN_WRITE_MASK (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)

static int add_core_filtered(scmp_filter_ctx ctx, unsigned groups)
{
        int r = 0;
        /* Unix sockets everywhere: the other roles, the master's status pipe, the journal. */
        r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "socket", ARG_EQ(0, AF_UNIX));
        r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "socketpair", ARG_EQ(0, AF_UNIX));
        /* Opening for reading everywhere, for writing only with the write group. */
        if (!(groups & G_WRITE)) {
                r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "openat", ARG_MASKED(2, OPEN_WRITE_MASK, 0));
                r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "open", ARG_MASKED(1, OPEN_WRITE_MASK, 0));
        }
        /* openat2's flags are in a structure seccomp cannot read: glibc falls back to openat. */
        r = r ?: rule0(ctx, SCMP_ACT_ERRNO(ENOSYS), "openat2");
        /* Threads, but no new processes without the process group; clone3's flags are out of reach
         * too, so it reports ENOSYS and glibc uses clone. */
        if (!(groups & G_PROC))
                r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "clone", ARG_MASKED(0, CLONE_THREAD, CLONE_THREAD));
        r = r ?: rule0(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3");
        /* An NSS module loaded at run time (nss_systemd, nss_resolve, nss_myhostname) brings libcap, whose
         * constructor reads the capability bounding set. No other prctl: reading it changes nothing. */
        r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "prctl", ARG_EQ(0, PR_CAPBSET_READ));
        /* ioctl: only what stdio and non-blocking descriptors ask; no request reaches a driver. */
        static const unsigned long ioctls[] = {TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX};
        for (size_t i = 0; i < ELEMENTSOF(ioctls); i++)
                r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "ioctl", ARG_EQ(1, ioctls[i]));
        return r;
}

static int add_net(scmp_filter_ctx ctx, unsigned groups)
{
        int r = 0;
        static const int families[] = {AF_INET, AF_INET6};
        for (size_t i = 0; i < ELEMENTSOF(families); i++) {
                if (groups & G_INET) {
                        r = r ?: rule1(ctx, SCMP_ACT_ALLOW, "socket", ARG_EQ(0, families[i]));
                        continue;
                }
                /* The resolver's UDP queries. */
                r = r
                            ?: rule2(ctx, SCMP_ACT_ALLOW, "socket", ARG_EQ(0, families[i]),
                                     ARG_MASKED(1, SOCK_TYPE_MASK, SOCK_DGRAM));
                /* Without the connect group the resolver's TCP retry of a truncated answer fails (a
                 * temporary lookup failure) instead of giving smtpd a stream socket. */
                r = r
                            ?: rule2(ctx, (groups & G_CONNECT) ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EACCES),
                                     "socket", ARG_EQ(0, families[i]),
                                     ARG_MASKED(1, SOCK_TYPE_MASK, SOCK_STREAM));
        }
        /* getaddrinfo() asks the kernel for the host's addresses (AI_ADDRCONFIG) over rtnetlink. */
        r = r
                    ?: rule2(ctx, SCMP_ACT_ALLOW, "socket", ARG_EQ(0, AF_NETLINK),
                             ARG_EQ(2, 0 /* NETLINK_ROUTE */));
        return r;
}

static void (*violation_report)(int syscall_nr);

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a SIGSYS sent by a seccomp trap (linux/signal.h) */
#endif

void sandbox_set_violation_report(void (*report)(int syscall_nr))
{
        violation_report = report;
}

char *sandbox_syscall_name(int syscall_nr)
{
        return seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, syscall_nr);
}

/* The refused call never ran: say which it was, then die of SIGSYS (SA_RESETHAND made that the action). */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
        if (si->si_code == SYS_SECCOMP && violation_report)
                violation_report(si->si_syscall);
        raise(SIGSYS);
        _exit(128 + SIGSYS); /* not reached: SIGSYS is not blocked here (SA_NODEFER) */
}

static int trap_violations(void)
{
        struct sigaction sa = {.sa_sigaction = on_sigsys,
                               .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER};
        sigemptyset(&sa.sa_mask);
        return sigaction(SIGSYS, &sa, NULL) < 0 ? -errno : 0;
}

static int load_role(const struct sandbox_role *role, bool log_only)
{
        /* A trap rather than the kernel's kill: the handler can name the call before the process dies. */
        int t = log_only ? 0 : trap_violations();
        if (t < 0)
                return t;
        scmp_filter_ctx ctx = seccomp_init(log_only ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
        if (!ctx)
                return -ENOMEM;
        unsigned g = role->groups;
        /* Every thread: the resolver's worker threads may already run. Root without CAP_SYS_ADMIN
         * (a unit's bounding set) cannot skip no_new_privs: then local's setgid helpers run without
         * their group, as they do under the baseline. */
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        r = r ?: seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, geteuid() == 0 ? 0 : 1);
        r = r ?: allow_names(ctx, group_core);
        r = r ?: add_core_filtered(ctx, g);
        if (g & G_WRITE) {
                r = r ?: allow_names(ctx, group_write);
                r = r ?: rule0(ctx, SCMP_ACT_ALLOW, "openat");
                r = r ?: rule0(ctx, SCMP_ACT_ALLOW, "open");
                r = r ?: rule0(ctx, SCMP_ACT_ALLOW, "creat");
        }
        if (g & (G_DNS | G_INET | G_CONNECT))
                r = r ?: add_net(ctx, g);
        if (g & G_INET)
                r = r ?: allow_names(ctx, group_inet);
        if (g & G_PROC) {
                r = r ?: allow_names(ctx, group_proc);
                r = r ?: rule0(ctx, SCMP_ACT_ALLOW, "clone");
        }
        if (g & G_SETID)
                r = r ?: allow_names(ctx, group_setid);
        if (r == 0) {
                r = seccomp_load(ctx);
                if ((r == -EACCES || r == -EPERM) && geteuid() == 0) {
                        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
                        r = seccomp_load(ctx);
                }
        }
        seccomp_release(ctx);
        return r;
}

int sandbox_apply_role(const char *role, bool log_only)
{
        const struct sandbox_role *ro = find_role(role);
        if (!ro)
                return 0;
#ifdef SANDBOX_SANITIZER
        log_only = true;
#endif
        return load_role(ro, log_only);
}
