/* sandbox.c: the seccomp baseline filter (see sandbox.h for what and why). */
#include "sandbox.h"

#include <errno.h>
#include <stdbool.h>
#include <seccomp.h>
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
