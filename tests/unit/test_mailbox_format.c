/* test_mailbox_format.c: the delivered copy's bytes, and the check that finds a copy already written. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "mailbox_format.h"

static const char msg[] = "Subject: x\n\nFrom here on\nbody\nlast line without LF";

static struct mailbox_copy copy(time_t when, bool mbox)
{
        return (struct mailbox_copy){.sender = "a@example.org",
                                     .rcpt = "u@example.test",
                                     .content = msg,
                                     .len = sizeof msg - 1,
                                     .when = when,
                                     .mbox = mbox};
}

/* An unnamed temporary file; -1 on failure (the caller's CHECK reports it). */
static int temp_file(void)
{
        char path[] = "/tmp/test_mailbox_format.XXXXXX";
        int fd = mkstemp(path);
        if (fd >= 0)
                unlink(path);
        return fd;
}

static size_t file_size(int fd)
{
        off_t end = lseek(fd, 0, SEEK_END);
        return end < 0 ? 0 : (size_t)end;
}

/* The whole file, NUL-terminated (malloc'd); NULL when it cannot be read. */
static char *read_all(int fd, size_t *len)
{
        *len = file_size(fd);
        char *data = xmalloc(*len + 1);
        if (pread(fd, data, *len, 0) != (ssize_t)*len) {
                free(data);
                return NULL;
        }
        data[*len] = '\0';
        return data;
}

TEST(copy_is_rendered_from_its_fields_alone)
{
        setenv("TZ", "UTC", 1);
        int fd = temp_file();
        CHECK(fd >= 0);
        struct mailbox_copy c = copy(86400 + 3661, true);
        CHECK_INT(mailbox_write_copy(fd, &c), 0);
        size_t len;
        char *text = read_all(fd, &len);
        CHECK(text != NULL);
        CHECK_STR(text, "From a@example.org Fri Jan  2 01:01:01 1970\n"
                        "Return-Path: <a@example.org>\nDelivered-To: u@example.test\n"
                        "Subject: x\n\n>From here on\nbody\nlast line without LF\n\n");
        /* The same fields, the same bytes: what a retry compares with. */
        CHECK_INT(mailbox_write_copy(fd, &c), 0);
        size_t len2;
        char *twice = read_all(fd, &len2);
        CHECK(twice != NULL);
        CHECK_INT(len2, 2 * len);
        CHECK(memcmp(twice, twice + len, len) == 0);
        free(text);
        free(twice);
        close(fd);
}

TEST(copy_present_absent_or_torn)
{
        int fd = temp_file();
        CHECK(fd >= 0);
        CHECK_INT(write(fd, "earlier mail\n\n", 14), 14);
        struct mailbox_copy c = copy(1700000000, true);
        CHECK_INT(mailbox_write_copy(fd, &c), 0);
        CHECK_INT(write(fd, "From later@example.org\n", 23), 23);
        CHECK_INT(mailbox_copy_present(fd, 14, &c), MAILBOX_COPY_PRESENT);
        CHECK_INT(mailbox_copy_present(fd, 13, &c), MAILBOX_COPY_ABSENT);
        CHECK_INT(mailbox_copy_present(fd, 0, &c), MAILBOX_COPY_ABSENT);
        /* Another attempt's time: another From_ line, so not this copy. */
        struct mailbox_copy other = copy(1700000001, true);
        CHECK_INT(mailbox_copy_present(fd, 14, &other), MAILBOX_COPY_ABSENT);

        /* Cut inside the copy: torn, every byte there matching; at the offset itself: nothing of it yet. */
        size_t whole = file_size(fd) - 23;
        CHECK_INT(ftruncate(fd, (off_t)whole - 5), 0);
        CHECK_INT(mailbox_copy_present(fd, 14, &c), MAILBOX_COPY_TORN);
        CHECK_INT(ftruncate(fd, 14), 0);
        CHECK_INT(mailbox_copy_present(fd, 14, &c), MAILBOX_COPY_TORN);
        /* A torn copy followed by something else is not ours to cut. */
        CHECK_INT(ftruncate(fd, 20), 0);
        CHECK_INT(pwrite(fd, "x", 1, 20), 1);
        CHECK_INT(mailbox_copy_present(fd, 14, &c), MAILBOX_COPY_ABSENT);
        close(fd);
}

TEST(big_copy_is_compared_in_pieces)
{
        /* Larger than MAILBOX_WRITE_CHUNK, one byte changed near the end. */
        struct buf big = BUF_INIT;
        for (int i = 0; i < 20000; i++)
                buf_printf(&big, "line %d of a long body\n", i);
        int fd = temp_file();
        CHECK(fd >= 0);
        struct mailbox_copy c = {
                .sender = "", .rcpt = "u@x", .content = big.data, .len = big.len, .mbox = false};
        CHECK_INT(mailbox_write_copy(fd, &c), 0);
        CHECK_INT(mailbox_copy_present(fd, 0, &c), MAILBOX_COPY_PRESENT);
        off_t near_end = (off_t)file_size(fd) - 10;
        CHECK_INT(pwrite(fd, "#", 1, near_end), 1);
        CHECK_INT(mailbox_copy_present(fd, 0, &c), MAILBOX_COPY_ABSENT);
        CHECK_INT(mailbox_copy_present(-1, 0, &c), -EBADF);
        close(fd);
        buf_done(&big);
}
