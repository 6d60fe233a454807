/* sendmail.c: the Sendmail-compatible front end (also mailq): reads a message and hands it to postdrop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dsn_notify.h"
#include "log.h"
#include "maildrop.h"
#include "maps.h"
#include "qfile.h"
#include "resolve.h"
#include "smtp_cmd.h"
#include "submit.h"

/* Longest message line kept as read; longer lines are still accepted (only the size limit counts). */
#define READ_CHUNK (64u * 1024)
/* Arguments a sendmail command line may carry (recipients included). */
#define ARGS_MAX  100000
#define EX_NOUSER 67 /* sendmail -bv: some address is undeliverable */

enum mode {
        MODE_ENQUEUE,
        MODE_MAILQ,
        MODE_FLUSH,
        MODE_SITE_FLUSH,
        MODE_NEWALIASES,
        MODE_VERIFY,
        MODE_DAEMON,
        MODE_SMTP
};

struct opts {
        enum mode mode;
        const char *config_arg; /* -C */
        const char *sender;     /* -f / -r */
        const char *full_name;  /* -F */
        const char *envid;      /* -V */
        const char *site;       /* -qR / -qS */
        unsigned notify;        /* -N */
        bool dot_ends;          /* without -i / -oi a lone "." ends the message */
        bool extract;           /* -t */
};

static const char *prog = "sendmail";
static char *config_dir;
static struct config *cfg;

_noreturn_ static void usage(void)
{
        submit_fatal(SUBMIT_EX_USAGE, "usage: %s [options] [recipient ...]", prog);
}

static unsigned parse_notify(const char *s)
{
        unsigned bits = 0;
        if (dsn_notify_parse(s, strlen(s), &bits) < 0)
                submit_fatal(SUBMIT_EX_USAGE,
                             "bad -N option value: %s (use never, or success, failure, delay)", s);
        return bits;
}

/* The path of a program in command_directory. */
static char *command_path(const char *name)
{
        return xasprintf("%s/%s", config_get(cfg, "command_directory"), name);
}

/* argv0 is the name the program sees: postalias acts as newaliases when called so. */
_noreturn_ static void exec_command_as(const char *name, const char *argv0, char *const extra[])
{
        _cleanup_free_ char *path = command_path(name);
        char *argv[16];
        size_t n = 0;
        argv[n++] = (char *)argv0;
        argv[n++] = (char *)"-c";
        argv[n++] = config_dir;
        for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(argv) - 1; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;
        execv(path, argv);
        submit_fatal(SUBMIT_EX_TEMPFAIL, "execute %s: %s", path, strerror(errno));
}

_noreturn_ static void exec_command(const char *name, char *const extra[])
{
        exec_command_as(name, name, extra);
}

/* "mailq", also as installed for alternatives(8): "mailq.postd". */
static bool called_as(const char *base, const char *name)
{
        size_t n = strlen(name);
        return strncmp(base, name, n) == 0 && (base[n] == '\0' || base[n] == '.');
}

/*
 * Read the message from stdin: CRLF becomes LF; without -i a line holding only "." ends it. More than
 * limit bytes is fatal, as in Postfix ("message file too big").
 */
static void read_message(FILE *in, bool dot_ends, uint64_t limit, const char *who, struct buf *out)
{
        struct buf line = BUF_INIT;
        int ch;
        bool eof = false;
        while (!eof) {
                buf_truncate(&line, 0);
                for (;;) {
                        ch = getc(in);
                        if (ch == EOF) {
                                eof = true;
                                break;
                        }
                        buf_putc(&line, (char)ch);
                        if (ch == '\n')
                                break;
                        if (out->len + line.len > limit)
                                submit_fatal(SUBMIT_EX_DATAERR, "%s: message file too big", who);
                }
                if (line.len == 0)
                        break;
                size_t n = line.len;
                bool nl = line.data[n - 1] == '\n';
                if (nl) {
                        n--;
                        if (n > 0 && line.data[n - 1] == '\r')
                                n--;
                }
                if (dot_ends && nl && n == 1 && line.data[0] == '.')
                        break;
                if (dot_ends && !nl && n == 1 && line.data[0] == '.')
                        break;
                buf_append(out, line.data, n);
                buf_putc(out, '\n');
                if (out->len > limit)
                        submit_fatal(SUBMIT_EX_DATAERR, "%s: message file too big", who);
        }
        if (ferror(in))
                submit_fatal(SUBMIT_EX_IOERR, "%s: read standard input: %s", who, strerror(errno));
        buf_done(&line);
}

static char *strip_angle(const char *s)
{
        size_t n = strlen(s);
        if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
                return xstrndup(s + 1, n - 2);
        return xstrdup(s);
}

/* Hand the message to postdrop on a pipe; returns postdrop's exit status (it reports its own errors). */
static int run_postdrop(const struct qfile_msg *m, const char *who)
{
        struct buf head = BUF_INIT, tail = BUF_INIT;
        if (qfile_encode(m, &head, &tail) < 0)
                submit_fatal(SUBMIT_EX_DATAERR, "%s: the message cannot be encoded (an address too long?)",
                             who);
        _cleanup_free_ char *path = command_path("postdrop");
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                submit_fatal(SUBMIT_EX_OSERR, "pipe: %s", strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
                submit_fatal(SUBMIT_EX_OSERR, "fork: %s", strerror(errno));
        if (pid == 0) {
                if (dup2(p[0], STDIN_FILENO) < 0)
                        _exit(SUBMIT_EX_OSERR);
                execl(path, "postdrop", "-r", "-c", config_dir, (char *)NULL);
                fprintf(stderr, "%s: fatal: %s: execute %s: %s\n", prog, who, path, strerror(errno));
                _exit(SUBMIT_EX_TEMPFAIL);
        }
        close(p[0]);
        signal(SIGPIPE, SIG_IGN);
        const struct {
                const char *p;
                size_t n;
        } parts[] = {{head.data, head.len}, {m->content, m->content_len}, {tail.data, tail.len}};
        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                const char *d = parts[i].p;
                size_t n = parts[i].n;
                while (n > 0) {
                        ssize_t w = write(p[1], d, n);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                break; /* postdrop gave up early; its exit status says why */
                        d += w;
                        n -= (size_t)w;
                }
        }
        close(p[1]);
        buf_done(&head);
        buf_done(&tail);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        submit_fatal(SUBMIT_EX_OSERR, "wait for postdrop: %s", strerror(errno));
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        submit_fatal(SUBMIT_EX_TEMPFAIL, "%s: postdrop terminated by signal %d", who, WTERMSIG(status));
}

/* Build the envelope of one message and submit it; returns postdrop's status. */
static int submit_message(const struct opts *o, const char *sender, struct strv *rcpts,
                          const struct buf *content, const char *who)
{
        struct qfile_msg m = {
                .arrival_usec = clock_usec(CLOCK_REALTIME),
                .sender = (char *)sender,
                .envelope_id = (char *)o->envid,
                .content = content->data ? content->data : "",
                .content_len = content->len,
        };
        m.rcpts = xcalloc(rcpts->n, sizeof *m.rcpts);
        for (size_t i = 0; i < rcpts->n; i++)
                m.rcpts[m.n_rcpts++] = (struct qfile_rcpt){.address = rcpts->v[i], .notify = o->notify};
        struct qfile_attr full = {.name = (char *)MAILDROP_ATTR_FULL_NAME, .value = (char *)o->full_name};
        if (!isempty(o->full_name)) {
                m.extra = &full;
                m.n_extra = 1;
        }
        int r = run_postdrop(&m, who);
        free(m.rcpts);
        return r;
}

/* ---- sendmail -bs: a minimal SMTP session on stdin/stdout that submits through postdrop ---- */

static void reply(const char *text)
{
        fputs(text, stdout);
        fputs("\r\n", stdout);
        fflush(stdout);
}

/*
 * sendmail -bv without a report message: one line per recipient on stdout, from the same routing the
 * queue manager uses (transport_maps, mydestination, relayhost...) and, for local domains, the local
 * recipient table smtpd uses. Exit EX_NOUSER when any recipient is undeliverable.
 */
static int verify(const struct strv *rcpts)
{
        _cleanup_free_ char *err = NULL;
        struct resolve *res = NULL;
        int r = resolve_new(cfg, &res, &err);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "%s", err ? err : strerror(-r));
        struct maps *local_rcpt = NULL;
        const char *lrm = config_get(cfg, "local_recipient_maps");
        struct strv specs = STRV_INIT;
        maps_split_list(lrm, &specs);
        if (specs.n > 0 && maps_open("local_recipient_maps", lrm, &local_rcpt, &err) < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "%s", err ? err : "local_recipient_maps: cannot open");
        strv_done(&specs);
        const char *myorigin = config_get(cfg, "myorigin");
        bool any_bad = false;
        for (size_t i = 0; i < rcpts->n; i++) {
                _cleanup_free_ char *addr = strchr(rcpts->v[i], '@') || isempty(myorigin)
                                                    ? xstrdup(rcpts->v[i])
                                                    : xasprintf("%s@%s", rcpts->v[i], myorigin);
                struct resolve_result rr = {0};
                _cleanup_free_ char *why = NULL;
                if (resolve_address(res, addr, &rr) < 0)
                        why = xstrdup("address resolver failure: lookup table failure");
                else if (streq(rr.transport, "error"))
                        why = xstrdup(isempty(rr.nexthop) ? "refused by the error transport" : rr.nexthop);
                else if (rr.local && local_rcpt) {
                        char *v = NULL;
                        int k = maps_find_address(local_rcpt, addr, true, &v);
                        free(v);
                        if (k < 0)
                                why = xstrdup("local_recipient_maps: lookup table failure");
                        else if (k == 0)
                                why = xstrdup("User unknown in local recipient table");
                }
                if (why) {
                        printf("%s: undeliverable: %s\n", addr, why);
                        any_bad = true;
                } else
                        printf("%s: deliverable via %s:%s\n", addr, rr.transport, rr.nexthop);
                resolve_result_done(&rr);
        }
        maps_free(local_rcpt);
        resolve_free(res);
        if (fflush(stdout) != 0)
                submit_fatal(SUBMIT_EX_IOERR, "output write error: %s", strerror(errno));
        return any_bad ? EX_NOUSER : 0;
}

static int smtp_session(const struct opts *o, const char *who, uint64_t limit)
{
        char greeting[512];
        snprintf(greeting, sizeof greeting, "220 %s ESMTP Postfix", config_get(cfg, "myhostname"));
        reply(greeting);
        char *sender = NULL;
        struct strv rcpts = STRV_INIT;
        char line[SMTP_CMD_LINE_MAX + 2];
        int rc = 0;
        while (fgets(line, sizeof line, stdin)) {
                size_t n = strlen(line);
                if (n > 0 && line[n - 1] != '\n' && !feof(stdin)) {
                        int ch;
                        while ((ch = getchar()) != EOF && ch != '\n')
                                ;
                        reply("500 5.5.0 Error: line too long");
                        continue;
                }
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        line[--n] = '\0';
                struct smtp_cmd cmd = {0};
                int r = smtp_cmd_parse(line, n, &(struct smtp_cmd_options){0}, &cmd);
                if (r < 0) {
                        reply(cmd.reply ? cmd.reply : "500 5.5.2 Error: bad syntax");
                        smtp_cmd_done(&cmd);
                        continue;
                }
                switch (cmd.verb) {
                case SMTP_VERB_HELO:
                case SMTP_VERB_EHLO: {
                        char hello[512];
                        snprintf(hello, sizeof hello, "250 %s", config_get(cfg, "myhostname"));
                        reply(hello);
                        break;
                }
                case SMTP_VERB_MAIL:
                        if (sender) {
                                reply("503 5.5.1 Error: nested MAIL command");
                                break;
                        }
                        sender = xstrdup(cmd.addr.addr ? cmd.addr.addr : "");
                        reply("250 2.1.0 Ok");
                        break;
                case SMTP_VERB_RCPT:
                        if (!sender) {
                                reply("503 5.5.1 Error: need MAIL command");
                                break;
                        }
                        if (rcpts.n >= MAILDROP_MAX_RECIPIENTS) {
                                reply("452 4.5.3 Error: too many recipients");
                                break;
                        }
                        strv_push(&rcpts, cmd.addr.addr ? cmd.addr.addr : "");
                        reply("250 2.1.5 Ok");
                        break;
                case SMTP_VERB_DATA: {
                        if (!sender || rcpts.n == 0) {
                                reply(sender ? "554 5.5.1 Error: no valid recipients"
                                             : "503 5.5.1 Error: need RCPT command");
                                break;
                        }
                        reply("354 End data with <CR><LF>.<CR><LF>");
                        struct buf raw = BUF_INIT, content = BUF_INIT;
                        read_message(stdin, true, limit, who, &raw);
                        /* Undo the dot-stuffing of lines that start with "..". */
                        for (size_t pos = 0; pos < raw.len;) {
                                const char *nl = memchr(raw.data + pos, '\n', raw.len - pos);
                                size_t len = nl ? (size_t)(nl - raw.data - pos) + 1 : raw.len - pos;
                                size_t skip = raw.data[pos] == '.' ? 1 : 0;
                                buf_append(&content, raw.data + pos + skip, len - skip);
                                pos += len;
                        }
                        int st = submit_message(o, sender, &rcpts, &content, who);
                        reply(st == 0 ? "250 2.0.0 Ok: queued" : "451 4.3.0 Error: queue file write error");
                        if (st != 0)
                                rc = st;
                        buf_done(&raw);
                        buf_done(&content);
                        free(sender);
                        sender = NULL;
                        strv_done(&rcpts);
                        break;
                }
                case SMTP_VERB_RSET:
                        free(sender);
                        sender = NULL;
                        strv_done(&rcpts);
                        reply("250 2.0.0 Ok");
                        break;
                case SMTP_VERB_NOOP: reply("250 2.0.0 Ok"); break;
                case SMTP_VERB_QUIT:
                        reply("221 2.0.0 Bye");
                        smtp_cmd_done(&cmd);
                        goto out;
                default: reply("502 5.5.2 Error: command not recognized");
                }
                smtp_cmd_done(&cmd);
        }
out:
        free(sender);
        strv_done(&rcpts);
        return rc;
}

static void load_config(const struct opts *o)
{
        const char *def = submit_default_config_dir();
        if (o->config_arg) {
                config_dir = submit_config_dir_from_arg(o->config_arg);
                /* Only root may name a directory that the default main.cf does not list (Postfix >= 3.2). */
                if (geteuid() != 0) {
                        int r = submit_config_dir_allowed(config_dir);
                        if (r < 0)
                                submit_fatal(SUBMIT_EX_TEMPFAIL, "open %s/main.cf: %s", def, strerror(-r));
                        if (r == 0)
                                submit_fatal(
                                        SUBMIT_EX_TEMPFAIL,
                                        "-C option: non-default configuration directory %s is not listed "
                                        "in alternate_config_directories or multi_instance_directories "
                                        "of the default main.cf",
                                        config_dir);
                }
        } else {
                const char *env = getenv("MAIL_CONFIG");
                config_dir = submit_config_dir_from_arg(!isempty(env) ? env : def);
        }
        submit_check_config_paths(config_dir);
        int r = config_load(config_dir, &cfg);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "open %s/main.cf: %s", config_dir, strerror(-r));
        log_command_to_system(config_get(cfg, "syslog_name"), config_get(cfg, "maillog_file"));
}

int main(int argc, char **argv)
{
        submit_harden_process();
        const char *base = strrchr(argv[0], '/');
        base = base ? base + 1 : argv[0];
        if (called_as(base, "mailq"))
                prog = "mailq";
        else if (called_as(base, "newaliases"))
                prog = "newaliases";
        log_setup_command(prog);
        if (argc > ARGS_MAX)
                submit_fatal(SUBMIT_EX_USAGE, "too many arguments");

        struct opts o = {.mode = MODE_ENQUEUE, .dot_ends = true};
        if (streq(prog, "mailq"))
                o.mode = MODE_MAILQ;
        else if (streq(prog, "newaliases"))
                o.mode = MODE_NEWALIASES;

        /* "-q" alone (flush) is not getopt-compatible with "-q interval" and "-qR site". */
        int c;
        opterr = 1;
        while (optind < argc) {
                if (streq(argv[optind], "-q")) {
                        o.mode = MODE_FLUSH;
                        optind++;
                        continue;
                }
                if ((c = getopt(argc, argv, "+B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q:r:tvx")) == -1)
                        break;
                switch (c) {
                case 'B':
                case 'G':
                case 'L':
                case 'O':
                case 'R':
                case 'U':
                case 'X':
                case 'c':
                case 'e':
                case 'h':
                case 'm':
                case 'n':
                case 'p':
                case 'v':
                case 'x': break; /* accepted and ignored, as in Postfix */
                case 'C': o.config_arg = optarg; break;
                case 'F': o.full_name = optarg; break;
                case 'I': o.mode = MODE_NEWALIASES; break;
                case 'N': o.notify = parse_notify(optarg); break;
                case 'V': o.envid = optarg; break;
                case 'b':
                        switch (optarg[0]) {
                        case 'm': o.mode = MODE_ENQUEUE; break;
                        case 'p': o.mode = MODE_MAILQ; break;
                        case 'i': o.mode = MODE_NEWALIASES; break;
                        case 'v': o.mode = MODE_VERIFY; break;
                        case 'd': o.mode = MODE_DAEMON; break;
                        case 's': o.mode = MODE_SMTP; break;
                        default: submit_fatal(SUBMIT_EX_USAGE, "unsupported: -%c%s", c, optarg);
                        }
                        break;
                case 'f':
                case 'r': o.sender = optarg; break;
                case 'i': o.dot_ends = false; break;
                case 'o':
                        if (optarg[0] == 'i')
                                o.dot_ends = false;
                        break; /* other -o options are ignored */
                case 'q':
                        if (optarg[0] == 'R' || optarg[0] == 'S') {
                                o.mode = MODE_SITE_FLUSH;
                                o.site = optarg + 1;
                        }
                        break; /* -q interval: ignored */
                case 't': o.extract = true; break;
                default: usage();
                }
        }
        load_config(&o);

        switch (o.mode) {
        case MODE_MAILQ: exec_command("postqueue", (char *[]){(char *)"-p", NULL});
        case MODE_FLUSH: exec_command("postqueue", (char *[]){(char *)"-f", NULL});
        case MODE_SITE_FLUSH: exec_command("postqueue", (char *[]){(char *)"-s", (char *)o.site, NULL});
        /* postalias, not newaliases: packages rename newaliases for alternatives(8), never postalias. */
        case MODE_NEWALIASES: exec_command_as("postalias", "newaliases", NULL);
        case MODE_DAEMON: exec_command("postfix", (char *[]){(char *)"start", NULL});
        case MODE_VERIFY:
        case MODE_ENQUEUE:
        case MODE_SMTP: break;
        }

        uid_t uid = getuid();
        _cleanup_free_ char *user = submit_user_name(uid);
        _cleanup_free_ char *who = xasprintf("%s(%ld)", user, (long)uid);
        submit_require_authorized(cfg, user, uid);

        long long lim = config_get_int(cfg, "message_size_limit");
        uint64_t limit = lim > 0 ? (uint64_t)lim : QFILE_MAX_CONTENT_LEN;
        if (o.mode == MODE_SMTP)
                return smtp_session(&o, who, limit);
        if (o.mode == MODE_VERIFY) {
                struct strv vr = STRV_INIT;
                for (int i = optind; i < argc; i++)
                        submit_extract_addresses(argv[i], strlen(argv[i]), &vr);
                if (vr.n == 0)
                        submit_fatal(SUBMIT_EX_USAGE,
                                     "%s: Recipient addresses must be specified on the command line", who);
                int r = verify(&vr);
                strv_done(&vr);
                return r;
        }

        struct strv rcpts = STRV_INIT;
        for (int i = optind; i < argc; i++)
                submit_extract_addresses(argv[i], strlen(argv[i]), &rcpts);
        struct buf raw = BUF_INIT, content = BUF_INIT;
        read_message(stdin, o.dot_ends, limit, who, &raw);
        if (o.extract) {
                submit_extract_header_rcpts(raw.data ? raw.data : "", raw.len, &rcpts, &content);
                buf_done(&raw);
        } else
                content = raw;
        if (rcpts.n == 0)
                submit_fatal(
                        SUBMIT_EX_USAGE,
                        o.extract ? "%s: No recipient addresses found in message header"
                                  : "%s: Recipient addresses must be specified on the command line or via "
                                    "the -t option",
                        who);
        if (rcpts.n > MAILDROP_MAX_RECIPIENTS)
                submit_fatal(SUBMIT_EX_USAGE, "%s: too many recipients", who);
        _cleanup_free_ char *sender = o.sender ? strip_angle(o.sender) : xstrdup(user);
        int r = submit_message(&o, sender, &rcpts, &content, who);
        strv_done(&rcpts);
        buf_done(&content);
        config_free(cfg);
        free(config_dir);
        return r;
}
