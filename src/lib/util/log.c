/* log.c: formats and routes log lines; the journal backend adds Postfix's structured fields. */
#include "fileio.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "journal_send.h"

/* One process logs for one instance and service; this is process state by nature, not instance state. */
static struct {
        enum log_backend backend;
        char *progname;
        char *tag;
        char *instance;
        char *service;
        int fd;
        /* A command's second destination (log_command_to_system): LOG_BACKEND_COMMAND means none. */
        enum log_backend also;
        int also_fd;
} log_state = {LOG_BACKEND_COMMAND, NULL, NULL, NULL, NULL, STDERR_FILENO, LOG_BACKEND_COMMAND, -1};

static const char *const level_prefix[] = {
        [LOG_LEVEL_INFO] = "",         [LOG_LEVEL_WARNING] = "warning: ", [LOG_LEVEL_ERROR] = "error: ",
        [LOG_LEVEL_FATAL] = "fatal: ", [LOG_LEVEL_PANIC] = "panic: ",
};

static const int level_priority[] = {
        [LOG_LEVEL_INFO] = LOG_INFO,  [LOG_LEVEL_WARNING] = LOG_WARNING, [LOG_LEVEL_ERROR] = LOG_ERR,
        [LOG_LEVEL_FATAL] = LOG_CRIT, [LOG_LEVEL_PANIC] = LOG_CRIT,
};

static void set_str(char **dst, const char *src)
{
        free(*dst);
        *dst = src ? xstrdup(src) : NULL;
}

void log_setup_command(const char *progname)
{
        const char *slash = strrchr(progname, '/');
        set_str(&log_state.progname, slash ? slash + 1 : progname);
        set_str(&log_state.tag, log_state.progname);
        log_state.backend = LOG_BACKEND_COMMAND;
        log_state.fd = STDERR_FILENO;
}

void log_setup_daemon(const char *syslog_name, const char *service, const char *maillog_file)
{
        const char *env = getenv("POSTD_LOG");
        const char *file = NULL;

        set_str(&log_state.instance, syslog_name);
        set_str(&log_state.service, service);
        free(log_state.tag);
        log_state.tag = xasprintf("%s/%s", syslog_name, service);
        set_str(&log_state.progname, log_state.tag);

        if (env && streq(env, "journal"))
                log_state.backend = LOG_BACKEND_JOURNAL;
        else if (env && streq(env, "stderr"))
                log_state.backend = LOG_BACKEND_STREAM;
        else if (env && strncmp(env, "file:", 5) == 0)
                file = env + 5;
        else if (getenv("JOURNAL_STREAM") || getenv("INVOCATION_ID"))
                log_state.backend = LOG_BACKEND_JOURNAL;
        else if (!isempty(maillog_file))
                file = maillog_file;
        else
                log_state.backend = LOG_BACKEND_STREAM;

        if (file) {
                int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
                if (fd >= 0) {
                        if (log_state.fd > STDERR_FILENO)
                                close(log_state.fd);
                        log_state.fd = fd;
                        log_state.backend = LOG_BACKEND_FILE;
                } else {
                        log_state.backend = LOG_BACKEND_STREAM;
                        msg_warn("cannot open log file %s: %s; logging to stderr", file, strerror(errno));
                }
        }
}

void log_command_to_system(const char *syslog_name, const char *maillog_file)
{
        const char *env = secure_getenv("POSTD_LOG");
        const char *file = NULL;
        if (log_state.backend != LOG_BACKEND_COMMAND || isempty(syslog_name))
                return;
        if (env && streq(env, "journal"))
                log_state.also = LOG_BACKEND_JOURNAL;
        else if (env && strncmp(env, "file:", 5) == 0)
                file = env + 5;
        else if (env && streq(env, "stderr"))
                return;
        else if (access("/run/systemd/journal/socket", F_OK) == 0)
                log_state.also = LOG_BACKEND_JOURNAL;
        else if (!isempty(maillog_file))
                file = maillog_file;
        if (file) {
                /* Never created here: a set-gid tool must not make files where its caller says. */
                int fd = open(file, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
                if (fd < 0)
                        return;
                log_state.also_fd = fd;
                log_state.also = LOG_BACKEND_FILE;
        }
        set_str(&log_state.instance, syslog_name);
        set_str(&log_state.service, log_state.progname);
        free(log_state.tag);
        log_state.tag = xasprintf("%s/%s", syslog_name, log_state.progname ? log_state.progname : "postd");
}

enum log_backend log_get_backend(void)
{
        return log_state.backend;
}

const char *log_tag(void)
{
        return log_state.tag ? log_state.tag : "postd";
}

const char *log_instance(void)
{
        return log_state.instance;
}

static void log_journal(enum log_level level, const struct log_fields *f, const char *text, bool fallback)
{
        struct iovec iov[16];
        char *owned[16];
        size_t n = 0;

#define FIELD(...)                                 \
        do {                                       \
                owned[n] = xasprintf(__VA_ARGS__); \
                iov[n].iov_base = owned[n];        \
                iov[n].iov_len = strlen(owned[n]); \
                n++;                               \
        } while (0)

        FIELD("MESSAGE=%s%s", level_prefix[level], text);
        FIELD("PRIORITY=%d", level_priority[level]);
        FIELD("SYSLOG_FACILITY=%d", LOG_MAIL >> 3);
        FIELD("SYSLOG_IDENTIFIER=%s", log_tag());
        FIELD("SYSLOG_PID=%d", (int)getpid());
        if (log_state.instance)
                FIELD("POSTFIX_INSTANCE=%s", log_state.instance);
        if (log_state.service)
                FIELD("POSTFIX_SERVICE=%s", log_state.service);
        if (f && f->queue_id)
                FIELD("POSTFIX_QUEUE_ID=%s", f->queue_id);
        if (f && f->status)
                FIELD("POSTFIX_STATUS=%s", f->status);
        if (f && f->dsn)
                FIELD("POSTFIX_DSN=%s", f->dsn);
        if (f && f->relay)
                FIELD("POSTFIX_RELAY=%s", f->relay);
        if (f && f->catalog_id)
                FIELD("MESSAGE_ID=%s", f->catalog_id);
#undef FIELD

        int r = journal_sendv(iov, n);
        if (r < 0 && fallback) {
                /* The journal is gone (shutdown, tests): the line must still go somewhere. */
                struct buf b = BUF_INIT;
                buf_printf(&b, "%s[%d]: %s%s\n", log_tag(), (int)getpid(), level_prefix[level], text);
                (void)write_full(STDERR_FILENO, b.data, b.len);
                buf_done(&b);
        }
        for (size_t i = 0; i < n; i++)
                free(owned[i]);
}

static char short_hostname[256];

/* The host name up to its first dot, as syslog shows it ("localhost" when it has none). */
static void find_short_hostname(void)
{
        if (gethostname(short_hostname, sizeof short_hostname - 1) < 0 || !short_hostname[0])
                snprintf(short_hostname, sizeof short_hostname, "localhost");
        char *dot = strchr(short_hostname, '.');
        if (dot)
                *dot = '\0';
}

/* "Mon DD HH:MM:SS host tag[pid]: level: text", as syslog writes it. */
static void format_stream(enum log_level level, const char *text, struct buf *line)
{
        char stamp[32] = "";
        time_t now = time(NULL);
        struct tm tm;
        if (localtime_r(&now, &tm))
                strftime(stamp, sizeof stamp, "%b %e %H:%M:%S", &tm);
        /* Asked once per process: uname(2) on every line showed in the per-message syscall counts. */
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, find_short_hostname);
        const char *host = short_hostname;
        buf_printf(line, "%s %s %s[%d]: %s%s\n", stamp, host, log_tag(), (int)getpid(), level_prefix[level],
                   text);
}

void msg_vlog(enum log_level level, const struct log_fields *f, const char *fmt, va_list ap)
{
        int saved_errno = errno;
        struct buf text = BUF_INIT;
        buf_vprintf(&text, fmt, ap);

        if (log_state.backend == LOG_BACKEND_JOURNAL) {
                log_journal(level, f, buf_str(&text), true);
        } else {
                struct buf line = BUF_INIT;
                if (log_state.backend == LOG_BACKEND_COMMAND)
                        buf_printf(&line, "%s: %s%s\n", log_state.progname ? log_state.progname : "postd",
                                   level_prefix[level], buf_str(&text));
                else
                        format_stream(level, buf_str(&text), &line);
                (void)write_full(log_state.fd, line.data, line.len);
                if (log_state.also == LOG_BACKEND_JOURNAL)
                        log_journal(level, f, buf_str(&text), false);
                else if (log_state.also == LOG_BACKEND_FILE) {
                        buf_truncate(&line, 0);
                        format_stream(level, buf_str(&text), &line);
                        (void)write_full(log_state.also_fd, line.data, line.len);
                }
                buf_done(&line);
        }
        buf_done(&text);
        errno = saved_errno;
}

void msg_fields(enum log_level level, const struct log_fields *f, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        msg_vlog(level, f, fmt, ap);
        va_end(ap);
}

#define DEFINE_MSG(name, level)                 \
        void name(const char *fmt, ...)         \
        {                                       \
                va_list ap;                     \
                va_start(ap, fmt);              \
                msg_vlog(level, NULL, fmt, ap); \
                va_end(ap);                     \
        }

DEFINE_MSG(msg_info, LOG_LEVEL_INFO)
DEFINE_MSG(msg_warn, LOG_LEVEL_WARNING)
DEFINE_MSG(msg_error, LOG_LEVEL_ERROR)

void msg_fatal(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        msg_vlog(LOG_LEVEL_FATAL, NULL, fmt, ap);
        va_end(ap);
        exit(1);
}

void msg_panic(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        msg_vlog(LOG_LEVEL_PANIC, NULL, fmt, ap);
        va_end(ap);
        abort();
}
