/* test_log.c: the logging module's line formats for tools, files and the instance tag. */
#include "unit.h"

#include <stdlib.h>

#include "alloc.h"
#include "fileio.h"
#include "log.h"

TEST(daemon_lines_carry_instance_tag_pid_and_level)
{
        char *path = xasprintf("%s/maillog", unit_tmpdir());
        char *env = xasprintf("file:%s", path);
        setenv("POSTD_LOG", env, 1);
        log_setup_daemon("postfix-dept1", "smtpd", NULL);
        CHECK_INT(log_get_backend(), LOG_BACKEND_FILE);
        CHECK_STR(log_tag(), "postfix-dept1/smtpd");
        msg_info("connect from localhost[127.0.0.1]");
        msg_warn("something odd");
        struct log_fields f = {.queue_id = "3F1A2B4C5D", .status = "sent"};
        msg_fields(LOG_LEVEL_INFO, &f, "%s: to=<a@b>, status=sent", f.queue_id);

        char *text = NULL;
        CHECK_INT(read_file(path, 1 << 20, &text, NULL), 0);
        char *expect =
                xasprintf(" postfix-dept1/smtpd[%d]: connect from localhost[127.0.0.1]\n", (int)getpid());
        CHECK(strstr(text, expect) != NULL);
        free(expect);
        expect = xasprintf(" postfix-dept1/smtpd[%d]: warning: something odd\n", (int)getpid());
        CHECK(strstr(text, expect) != NULL);
        CHECK(strstr(text, "3F1A2B4C5D: to=<a@b>, status=sent\n") != NULL);
        /* three lines, each ending in a newline: nothing else was written */
        int lines = 0;
        for (char *p = text; *p; p++)
                lines += *p == '\n';
        CHECK_INT(lines, 3);
        free(expect);
        free(text);
        free(env);
        free(path);
        unsetenv("POSTD_LOG");
}

TEST(explicit_backend_wins_over_maillog_file)
{
        setenv("POSTD_LOG", "stderr", 1);
        log_setup_daemon("postfix", "qmgr", "/nonexistent/maillog");
        CHECK_INT(log_get_backend(), LOG_BACKEND_STREAM);
        CHECK_STR(log_instance(), "postfix");
        unsetenv("POSTD_LOG");
}

TEST(command_tool_strips_path_from_name)
{
        log_setup_command("/usr/sbin/postconf");
        CHECK_INT(log_get_backend(), LOG_BACKEND_COMMAND);
        CHECK_STR(log_tag(), "postconf");
}
