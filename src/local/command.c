/* command.c: delivery to a command (|cmd, mailbox_command): a child as the recipient, its exit as sysexits.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "local.h"
#include "log.h"

struct sysexit {
        int status;
        const char *dsn;
        const char *text;
        bool temporary;
};

/* sysexits.h, with the DSN codes and the soft/hard split Postfix's delivery agents use. */
static const struct sysexit sysexits[] = {
        {64, "5.3.0", "command line usage error", false},
        {65, "5.6.0", "data format error", false},
        {66, "5.3.0", "cannot open input", false},
        {67, "5.1.1", "user unknown", false},
        {68, "5.1.2", "host name unknown", false},
        {69, "5.3.0", "service unavailable", false},
        {70, "5.3.0", "internal software error", false},
        {71, "4.3.0", "system resource problem", true},
        {72, "5.3.0", "critical OS file missing", false},
        {73, "5.2.0", "can't create user output file", false},
        {74, "5.3.0", "input/output error", false},
        {75, "4.3.0", "temporary failure", true},
        {76, "5.5.0", "remote error in protocol", false},
        {77, "5.7.0", "permission denied", false},
        {78, "5.3.5", "local configuration error", false},
};

bool command_exit_status(int status, const char **ret_dsn, const char **ret_text)
{
        for (size_t i = 0; i < ELEMENTSOF(sysexits); i++)
                if (sysexits[i].status == status) {
                        *ret_dsn = sysexits[i].dsn;
                        *ret_text = sysexits[i].text;
                        return sysexits[i].temporary;
                }
        *ret_dsn = NULL;
        *ret_text = NULL;
        return false;
}

static uint64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What the command reads: From_ line, Return-Path:, Delivered-To:, the message (as procmail expects). */
static void command_input(const struct local_message *m, struct buf *b)
{
        mailbox_from_line(b, m->sender, time(NULL));
        buf_printf(b, "Return-Path: <%s>\nDelivered-To: %s\n", m->sender, m->rcpt);
        buf_append(b, m->content, m->content_len);
        if (m->content_len > 0 && m->content[m->content_len - 1] != '\n')
                buf_putc(b, '\n');
}

/* Output kept for the reason: the first LOCAL_COMMAND_OUTPUT_MAX bytes, line ends as blanks. */
static void keep_output(struct buf *out, const char *data, size_t n)
{
        for (size_t i = 0; i < n && out->len < LOCAL_COMMAND_OUTPUT_MAX; i++)
                buf_putc(out, data[i] == '\n' || data[i] == '\r' || data[i] == '\t' ? ' ' : data[i]);
}

struct pump {
        int in, out;     /* the command's stdin (we write), its output (we read); -1 once done */
        struct local *l; /* its spawner reports the command's end */
        bool exited;
        int wst;
        const struct buf *msg;
        size_t sent;
        struct buf output;
};

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void pump_read(struct pump *p)
{
        char chunk[4096];
        ssize_t k = read(p->out, chunk, sizeof chunk);
        if (k > 0)
                keep_output(&p->output, chunk, (size_t)k);
        else if (k == 0 || errno != EINTR)
                close_fd(&p->out);
}

static void pump_write(struct pump *p)
{
        ssize_t k = write(p->in, p->msg->data + p->sent, p->msg->len - p->sent);
        if (k > 0)
                p->sent += (size_t)k;
        /* A command that does not read all of its input (EPIPE) is not an error in itself: its exit
         * status decides. */
        if ((k < 0 && errno != EINTR && errno != EAGAIN) || p->sent == p->msg->len)
                close_fd(&p->in);
}

/*
 * Feed stdin and read the output until the command has exited and its output is closed, or until the
 * deadline (true). A command that closed its output early still gets all of its input; one that exited
 * without reading it all is not waited for.
 */
static bool pump_io(struct pump *p, uint64_t deadline)
{
        while (!p->exited || p->out >= 0) {
                uint64_t now = now_ms();
                if (now >= deadline)
                        return true;
                if (!p->exited) {
                        int r = spawn_read_exit(p->l, &p->wst);
                        if (r != 0) {
                                /* A spawner that failed cannot say more: as if killed. */
                                if (r < 0)
                                        p->wst = SIGKILL;
                                p->exited = true;
                                close_fd(&p->in);
                                continue;
                        }
                }
                struct pollfd fds[3];
                nfds_t n = 0;
                if (p->out >= 0)
                        fds[n++] = (struct pollfd){.fd = p->out, .events = POLLIN};
                if (p->in >= 0)
                        fds[n++] = (struct pollfd){.fd = p->in, .events = POLLOUT};
                fds[n++] = (struct pollfd){.fd = spawn_fd(p->l), .events = POLLIN};
                int wait = (int)(deadline - now < 1000 ? deadline - now : 1000);
                if (poll(fds, n, wait) <= 0)
                        continue;
                for (nfds_t i = 0; i < n; i++) {
                        if (fds[i].revents && fds[i].fd == p->out)
                                pump_read(p);
                        else if (fds[i].revents && fds[i].fd == p->in)
                                pump_write(p);
                }
        }
        return false;
}

static void set_result(struct local_status *st, const char *command, int wst, bool timed_out,
                       const struct buf *output)
{
        char tail[LOCAL_COMMAND_OUTPUT_MAX + 32] = "";
        if (output->len > 0)
                snprintf(tail, sizeof tail, ". Command output: %.*s", (int)output->len, output->data);
        if (timed_out) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "Command time limit exceeded: \"%s\"%s",
                                 command, tail);
                return;
        }
        if (WIFSIGNALED(wst)) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "Command died with signal %d: \"%s\"%s",
                                 WTERMSIG(wst), command, tail);
                return;
        }
        int status = WEXITSTATUS(wst);
        if (status == 0) {
                local_status_set(st, LOCAL_SENT, "2.0.0", "delivered to command: %s", command);
                return;
        }
        const char *dsn, *text;
        bool temporary = command_exit_status(status, &dsn, &text);
        if (dsn)
                local_status_set(st, temporary ? LOCAL_DEFERRED : LOCAL_BOUNCED, dsn, "%s%s", text,
                                 output->len ? tail : "");
        else
                local_status_set(st, LOCAL_BOUNCED, "5.3.0", "Command died with status %d: \"%s\"%s", status,
                                 command, tail);
}

void command_deliver(struct local *l, const struct local_message *m, const char *command,
                     const struct local_privs *p, char *const *env, struct local_status *st)
{
        /* The command may exit without reading its input: a write then fails, never kills us. */
        signal(SIGPIPE, SIG_IGN);
        const char *shell = !isempty(l->command_shell) ? l->command_shell : "/bin/sh";
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot create pipe: %s", strerror(errno));
                return;
        }
        if (pipe2(out, O_CLOEXEC) < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot create pipe: %s", strerror(errno));
                close(in[0]);
                close(in[1]);
                return;
        }
        /* Delivery on behalf of root runs as default_privs, as in Postfix: never a command as root. */
        struct local_privs as = *p;
        if (as.uid == 0 || as.gid == 0)
                as = (struct local_privs){.uid = l->default_uid, .gid = l->default_gid, .home = p->home};
        pid_t pid = 0;
        int r = spawn_command(l, shell, command, &as, env, in[0], out[1], &pid);
        close(in[0]);
        close(out[1]);
        if (r < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot start command: %s", strerror(-r));
                close(in[1]);
                close(out[0]);
                return;
        }
        fcntl(in[1], F_SETFL, O_NONBLOCK);
        struct buf msg = BUF_INIT;
        command_input(m, &msg);
        struct pump pu = {.in = in[1], .out = out[0], .l = l, .msg = &msg, .output = BUF_INIT};
        uint64_t deadline =
                now_ms() + (uint64_t)(l->command_time_limit > 0 ? l->command_time_limit : 1) * 1000;
        bool timed_out = pump_io(&pu, deadline);
        int wst = pu.wst;
        if (timed_out) {
                /* The whole process group: a pipeline, or whatever the command left behind. */
                spawn_kill(l);
                if (!pu.exited)
                        wst = spawn_wait_exit(l);
                else
                        timed_out = false; /* it ended in time; what it left holding its output did not */
        }
        close_fd(&pu.in);
        close_fd(&pu.out);
        set_result(st, command, wst, timed_out, &pu.output);
        buf_done(&msg);
        buf_done(&pu.output);
}
