/* test_queue.c: queue IDs, queue directory layout, durable writes and group commit, moves, recovery,
 * mark-done. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "queue.h"

TEST(queue_id_format_and_valid)
{
        char id[QUEUE_ID_BUF_SIZE];
        queue_id_format(0x3F1A2, 0xB4C5D, id);
        CHECK_STR(id, "3F1A2B4C5D");
        queue_id_format(7, 0, id);
        CHECK_STR(id, "000070");
        queue_id_format(999999, UINT64_MAX, id);
        CHECK_STR(id, "F423FFFFFFFFFFFFFFFFF");
        CHECK(queue_id_valid(id));
        uint64_t ino = 0;
        CHECK_INT(queue_id_inode("3F1A2B4C5D", &ino), 0);
        CHECK_INT(ino, 0xB4C5D);

        CHECK(queue_id_valid("3F1A2B4C5D"));
        CHECK(queue_id_valid("000001"));
        CHECK(!queue_id_valid(NULL));
        CHECK(!queue_id_valid(""));
        CHECK(!queue_id_valid("3F1A2"));      /* no inode part */
        CHECK(!queue_id_valid("3f1a2b4c5d")); /* lowercase */
        CHECK(!queue_id_valid("3F1A2B4C5G"));
        CHECK(!queue_id_valid("../3F1A2B4C5D"));
        CHECK(!queue_id_valid("3F1A2B4C5D/"));
        CHECK(!queue_id_valid("F42403"));                 /* microseconds > 999999 */
        CHECK(!queue_id_valid("3F1A20B4C5D"));            /* leading zero in the inode part */
        CHECK(!queue_id_valid("3F1A2FFFFFFFFFFFFFFFFF")); /* 22 characters */
        CHECK(!queue_id_valid(".tmp.1.2.3"));
        CHECK_INT(queue_id_inode("nope", &ino), -EINVAL);
}

static struct queue_owners owners(void)
{
        /* As root, ids nobody uses, to see that they are really applied; otherwise our own. */
        if (geteuid() == 0)
                return (struct queue_owners){.mail_owner = 4711,
                                             .mail_group = 4712,
                                             .setgid_group = 4713,
                                             .root_uid = 0,
                                             .root_gid = 0};
        return (struct queue_owners){getuid(), getgid(), getgid(), getuid(), getgid()};
}

static char *make_queue(const char *name)
{
        char *dir = xasprintf("%s/%s", unit_tmpdir(), name);
        struct queue_owners o = owners();
        if (queue_layout_create(dir, &o) < 0)
                abort();
        return dir;
}

static bool exists_at(int dirfd, const char *name)
{
        struct stat st;
        return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static size_t count_entries(const char *dir, const char *sub)
{
        char *cmd = xasprintf("ls -A '%s/%s' | wc -l", dir, sub);
        FILE *p = popen(cmd, "r");
        free(cmd);
        if (!p)
                return (size_t)-1;
        size_t n = (size_t)-1;
        if (fscanf(p, "%zu", &n) != 1)
                n = (size_t)-1;
        pclose(p);
        return n;
}

TEST(layout_create_and_check)
{
        char *dir = make_queue("layout");
        struct queue_owners o = owners();
        struct strv problems = STRV_INIT;
        CHECK_INT(queue_layout_check(dir, &o, &problems), 0);
        CHECK_INT(problems.n, 0);

        struct stat st;
        char *p = xasprintf("%s/maildrop", dir);
        CHECK_INT(stat(p, &st), 0);
        CHECK_INT(st.st_mode & 07777, 01730);
        CHECK_INT(st.st_uid, o.mail_owner);
        CHECK_INT(st.st_gid, o.setgid_group);
        free(p);
        p = xasprintf("%s/public", dir);
        CHECK_INT(stat(p, &st), 0);
        CHECK_INT(st.st_mode & 07777, 0710);
        CHECK_INT(st.st_gid, o.setgid_group);
        free(p);
        p = xasprintf("%s/private", dir);
        CHECK_INT(stat(p, &st), 0);
        CHECK_INT(st.st_mode & 07777, 0700);
        CHECK_INT(st.st_uid, o.mail_owner);
        free(p);
        p = xasprintf("%s/pid", dir);
        CHECK_INT(stat(p, &st), 0);
        CHECK_INT(st.st_uid, o.root_uid);
        CHECK_INT(st.st_mode & 07777, 0755);
        free(p);
        for (int n = 0; n < _QUEUE_MAX; n++) {
                p = xasprintf("%s/%s", dir, queue_name_to_string(n));
                CHECK_INT(stat(p, &st), 0);
                CHECK(S_ISDIR(st.st_mode));
                free(p);
        }

        /* Break it in four ways; each is one problem line. */
        p = xasprintf("%s/maildrop", dir);
        CHECK_INT(chmod(p, 0755), 0);
        free(p);
        p = xasprintf("%s/flush", dir);
        CHECK_INT(rmdir(p), 0);
        free(p);
        p = xasprintf("%s/hold", dir);
        CHECK_INT(rmdir(p), 0);
        CHECK_INT(symlink("/tmp", p), 0);
        free(p);
        bool root = geteuid() == 0;
        if (root) {
                p = xasprintf("%s/incoming", dir);
                CHECK_INT(chown(p, 4799, (gid_t)-1), 0);
                free(p);
        }
        CHECK_INT(queue_layout_check(dir, &o, &problems), root ? 4 : 3);
        CHECK_INT(problems.n, root ? 4 : 3);
        char *want = xasprintf("%s/maildrop: mode 0755, expected 1730", dir);
        bool found = false;
        for (size_t i = 0; i < problems.n; i++)
                found |= streq(problems.v[i], want);
        CHECK(found);
        free(want);
        want = xasprintf("%s/flush: missing", dir);
        found = false;
        for (size_t i = 0; i < problems.n; i++)
                found |= streq(problems.v[i], want);
        CHECK(found);
        free(want);
        want = xasprintf("%s/hold: symbolic link, expected a directory", dir);
        found = false;
        for (size_t i = 0; i < problems.n; i++)
                found |= streq(problems.v[i], want);
        CHECK(found);
        free(want);
        if (root) {
                want = xasprintf("%s/incoming: owner uid 4799, expected 4711", dir);
                found = false;
                for (size_t i = 0; i < problems.n; i++)
                        found |= streq(problems.v[i], want);
                CHECK(found);
                free(want);
        }
        strv_done(&problems);

        /* create refuses the symlink (it never follows one), and repairs everything once it is gone. */
        CHECK(queue_layout_create(dir, &o) < 0);
        p = xasprintf("%s/hold", dir);
        CHECK_INT(unlink(p), 0);
        free(p);
        CHECK_INT(queue_layout_create(dir, &o), 0);
        CHECK_INT(queue_layout_check(dir, &o, &problems), 0);
        strv_done(&problems);

        struct queue *q = NULL;
        CHECK_INT(queue_open(dir, &q), 0);
        queue_close(q);
        free(dir);

        char *missing = xasprintf("%s/nonexistent", unit_tmpdir());
        CHECK_INT(queue_layout_check(missing, &o, &problems), -ENOENT);
        CHECK_INT(queue_open(missing, &q), -ENOENT);
        free(missing);
}

/* Re-creating a correct layout changes nothing: no chown/chmod (under SELinux each is a setattr check
 * the policy may not grant), seen as an unchanged ctime on every directory. */
TEST(layout_create_again_changes_nothing)
{
        char *dir = make_queue("again");
        struct queue_owners o = owners();
        const char *names[] = {"", "/incoming", "/maildrop", "/public", "/private", "/pid", "/flush"};
        struct timespec before[ELEMENTSOF(names)];
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char *p = xasprintf("%s%s", dir, names[i]);
                struct stat st;
                CHECK_INT(stat(p, &st), 0);
                before[i] = st.st_ctim;
                free(p);
        }
        /* File timestamps tick at the kernel's coarse clock: let it pass one tick (a few ms). */
        struct timespec tick = {.tv_nsec = 20 * 1000 * 1000};
        nanosleep(&tick, NULL);
        CHECK_INT(queue_layout_create(dir, &o), 0);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char *p = xasprintf("%s%s", dir, names[i]);
                struct stat st;
                CHECK_INT(stat(p, &st), 0);
                free(p);
                CHECK_INT(st.st_ctim.tv_sec, before[i].tv_sec);
                CHECK_INT(st.st_ctim.tv_nsec, before[i].tv_nsec);
        }
        free(dir);
}

TEST(queue_names)
{
        CHECK_STR(queue_name_to_string(QUEUE_DEFERRED), "deferred");
        CHECK_INT(queue_name_from_string("maildrop"), QUEUE_MAILDROP);
        CHECK_INT(queue_name_from_string("nope"), -EINVAL);
        CHECK(queue_name_to_string(_QUEUE_MAX) == NULL);
}

static const char body[] = "Subject: hi\n\nhello\n";

static struct qfile_msg test_msg(struct qfile_rcpt *r, size_t n)
{
        return (struct qfile_msg){.arrival_usec = 1,
                                  .sender = "s@example.org",
                                  .rcpts = r,
                                  .n_rcpts = n,
                                  .ready = true,
                                  .content = body,
                                  .content_len = sizeof(body) - 1};
}

static int load(struct queue *q, const char *id, enum queue_name n, struct qfile_msg *m, char **data)
{
        int fd;
        int r = queue_open_file(q, id, n, O_RDONLY, &fd);
        if (r < 0)
                return r;
        size_t len;
        r = queue_read_fd(fd, data, &len);
        close(fd);
        if (r < 0)
                return r;
        r = qfile_decode(*data, len, m, NULL);
        if (r < 0)
                free(*data);
        return r;
}

TEST(write_commit_and_read_back)
{
        char *dir = make_queue("write");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        int ifd = queue_dirfd(q, QUEUE_INCOMING);
        CHECK(ifd >= 0);
        CHECK_INT(queue_dirfd(q, QUEUE_PUBLIC), -1);

        struct queue_file *f;
        CHECK_INT(queue_file_create(q, &f), 0);
        const char *id = queue_file_id(f);
        CHECK(queue_id_valid(id));
        /* The ID is the inode's, and the file is not in the queue under its ID before the commit. */
        struct stat st;
        CHECK_INT(fstat(queue_file_fd(f), &st), 0);
        uint64_t ino;
        CHECK_INT(queue_id_inode(id, &ino), 0);
        CHECK_INT(ino, st.st_ino);
        CHECK_INT(st.st_mode & 07777, 0600);
        CHECK(!exists_at(ifd, id));
        CHECK_INT(count_entries(dir, "incoming"), 1);

        /* Committing an unwritten file is refused. */
        CHECK_INT(queue_file_commit(q, f), -EINVAL);
        struct qfile_rcpt r = {.address = "r@example.com"};
        struct qfile_msg m = test_msg(&r, 1);
        CHECK_INT(queue_file_write(f, &m, 0), 0);
        CHECK_INT(queue_file_write(f, &m, 0), -EALREADY);
        CHECK_INT(queue_file_commit(q, f), 0);
        CHECK(queue_file_committed(f));
        CHECK(exists_at(ifd, id));
        CHECK_INT(count_entries(dir, "incoming"), 1);
        char *saved_id = xstrdup(id);
        queue_file_free(f);
        CHECK(exists_at(ifd, saved_id)); /* committed files stay */

        struct qfile_msg out;
        char *data;
        CHECK_INT(load(q, saved_id, QUEUE_INCOMING, &out, &data), 0);
        CHECK_STR(out.sender, "s@example.org");
        CHECK_STR(out.rcpts[0].address, "r@example.com");
        CHECK(out.ready);
        CHECK_INT(out.content_len, sizeof(body) - 1);
        qfile_msg_done(&out);
        free(data);

        char *path = queue_path(q, QUEUE_DEFERRED, saved_id);
        char *want = xasprintf("deferred/%s", saved_id);
        CHECK_STR(path, want);
        free(path);
        free(want);
        CHECK_STR(queue_directory(q), dir);

        /* A file that is never committed leaves nothing behind. */
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_write(f, &m, 0), 0);
        CHECK_INT(count_entries(dir, "incoming"), 2);
        queue_file_free(f);
        CHECK_INT(count_entries(dir, "incoming"), 1);

        free(saved_id);
        queue_close(q);
        free(dir);
}

/* A file written as its content arrives is the same file, and only a finished one is committed. */
TEST(streamed_write_commit_and_read_back)
{
        char *dir = make_queue("stream");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct qfile_rcpt r = {.address = "r@example.com"};
        struct qfile_msg m = test_msg(&r, 1);
        struct buf content = BUF_INIT;
        for (int i = 0; i < 20000; i++)
                buf_printf(&content, "body line %d\n", i);
        m.content = content.data;
        m.content_len = content.len;

        struct queue_file *f;
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_append(f, "x", 1), -EINVAL); /* no head yet */
        CHECK_INT(queue_file_begin(f, &m), 0);
        CHECK_INT(queue_file_begin(f, &m), -EALREADY);
        CHECK_INT(queue_file_commit(q, f), -EINVAL); /* not finished */
        for (size_t off = 0; off < content.len; off += 7777) {
                size_t n = content.len - off < 7777 ? content.len - off : 7777;
                CHECK_INT(queue_file_append(f, content.data + off, n), 0);
        }
        CHECK_INT(queue_file_finish(f, QUEUE_NOSYNC), 0);
        CHECK_INT(queue_file_append(f, "x", 1), -EINVAL);
        CHECK_INT(queue_file_sync(f), 0);
        CHECK_INT(queue_file_commit(q, f), 0);
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);

        struct qfile_msg out;
        char *data;
        CHECK_INT(load(q, id, QUEUE_INCOMING, &out, &data), 0);
        CHECK_INT(out.content_len, content.len);
        CHECK(memcmp(out.content, content.data, content.len) == 0);
        CHECK_STR(out.rcpts[0].address, "r@example.com");
        /* Byte for byte what the one-shot encoder makes. */
        struct buf want = BUF_INIT;
        CHECK_INT(qfile_encode_all(&m, &want), 0);
        CHECK(memcmp(data, want.data, want.len) == 0);
        qfile_msg_done(&out);
        free(data);
        buf_done(&want);
        buf_done(&content);
        free(id);
        queue_close(q);
        free(dir);
}

/* Content-rejected local mail: every recipient marked bounced before the commit, checksum intact; HOLD. */
TEST(streamed_mark_all_and_hold)
{
        char *dir = make_queue("markall");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct qfile_rcpt r[3] = {{.address = "a@example.com"},
                                  {.address = "b@example.com", .orcpt = "rfc822;x@y"},
                                  {.address = "c@example.com"}};
        struct qfile_msg m = test_msg(r, 3);
        struct queue_file *f;
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_mark_all(f, QFILE_RCPT_BOUNCED, 5, "5.7.1"), -EINVAL); /* no head yet */
        CHECK_INT(queue_file_begin(f, &m), 0);
        CHECK_INT(queue_file_append(f, m.content, m.content_len), 0);
        CHECK_INT(queue_file_finish(f, QUEUE_NOSYNC), 0);
        CHECK_INT(queue_file_mark_all(f, QFILE_RCPT_BOUNCED, 5, "5.7.1"), 0);
        CHECK_INT(queue_file_sync(f), 0);
        queue_file_set_hold(q, f);
        CHECK_INT(queue_file_commit(q, f), 0);
        CHECK_INT(queue_file_mark_all(f, QFILE_RCPT_BOUNCED, 5, "5.7.1"), -EINVAL); /* committed */
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);
        CHECK_INT(count_entries(dir, "incoming"), 0);
        struct qfile_msg out;
        char *data;
        CHECK_INT(load(q, id, QUEUE_HOLD, &out, &data), 0);
        CHECK_INT(out.n_rcpts, 3);
        for (size_t i = 0; i < 3; i++) {
                CHECK_INT(out.rcpts[i].state, QFILE_RCPT_BOUNCED);
                CHECK_STR(out.rcpts[i].dsn_status, "5.7.1");
                CHECK_INT(out.rcpts[i].done_usec, 5);
        }
        CHECK_STR(out.rcpts[1].orcpt, "rfc822;x@y");
        qfile_msg_done(&out);
        free(data);
        free(id);
        queue_close(q);
        free(dir);
}

TEST(ids_unique_among_live_files)
{
        char *dir = make_queue("ids");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        enum { N = 500 };
        struct queue_file **files = xcalloc(N, sizeof *files);
        for (int i = 0; i < N; i++)
                CHECK_INT(queue_file_create(q, &files[i]), 0);
        size_t dups = 0;
        for (int i = 0; i < N; i++)
                for (int j = i + 1; j < N; j++)
                        if (streq(queue_file_id(files[i]), queue_file_id(files[j])))
                                dups++;
        CHECK_INT(dups, 0);
        CHECK_INT(count_entries(dir, "incoming"), N);
        for (int i = 0; i < N; i++)
                queue_file_free(files[i]);
        CHECK_INT(count_entries(dir, "incoming"), 0);
        free(files);
        queue_close(q);
        free(dir);
}

TEST(commit_batch_one_directory_fsync)
{
        char *dir = make_queue("batch");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        int ifd = queue_dirfd(q, QUEUE_INCOMING);
        enum { N = 20 };
        struct queue_file *files[N + 2];
        struct qfile_rcpt r = {.address = "r@example.com"};
        struct qfile_msg m = test_msg(&r, 1);
        for (int i = 0; i < N; i++) {
                CHECK_INT(queue_file_create(q, &files[i]), 0);
                CHECK_INT(queue_file_write(files[i], &m, 0), 0);
        }
        /* One file in the batch was never written, one not synced: they alone fail. */
        CHECK_INT(queue_file_create(q, &files[N]), 0);
        CHECK_INT(queue_file_create(q, &files[N + 1]), 0);
        CHECK_INT(queue_file_sync(files[N]), -EINVAL);
        CHECK_INT(queue_file_write(files[N + 1], &m, QUEUE_NOSYNC), 0);
        CHECK_INT(queue_commit_batch(ifd, files, N + 2), N);
        for (int i = 0; i < N; i++) {
                CHECK_INT(queue_file_result(files[i]), 0);
                CHECK(queue_file_committed(files[i]));
                CHECK(exists_at(ifd, queue_file_id(files[i])));
        }
        CHECK_INT(queue_file_result(files[N]), -EINVAL);
        CHECK(!queue_file_committed(files[N]));
        CHECK(!exists_at(ifd, queue_file_id(files[N])));
        CHECK_INT(queue_file_result(files[N + 1]), -EINVAL);
        CHECK(!exists_at(ifd, queue_file_id(files[N + 1])));
        CHECK_INT(queue_file_sync(files[N + 1]), 0);
        CHECK_INT(queue_commit_batch(ifd, &files[N + 1], 1), 1);
        CHECK(exists_at(ifd, queue_file_id(files[N + 1])));
        /* A second commit of the same files changes nothing. */
        CHECK_INT(queue_commit_batch(ifd, files, N), 0);
        CHECK_INT(queue_file_result(files[0]), -EALREADY);
        for (int i = 0; i <= N + 1; i++)
                queue_file_free(files[i]);
        CHECK_INT(count_entries(dir, "incoming"), N + 1);
        queue_close(q);
        free(dir);
}

TEST(move_and_remove)
{
        char *dir = make_queue("move");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct queue_file *f;
        struct qfile_rcpt r = {.address = "r@example.com"};
        struct qfile_msg m = test_msg(&r, 1);
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_write(f, &m, 0), 0);
        CHECK_INT(queue_file_commit(q, f), 0);
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);

        CHECK_INT(queue_move(q, id, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_SYNC), 0);
        CHECK(!exists_at(queue_dirfd(q, QUEUE_INCOMING), id));
        CHECK(exists_at(queue_dirfd(q, QUEUE_ACTIVE), id));
        CHECK_INT(queue_move(q, id, QUEUE_INCOMING, QUEUE_ACTIVE, 0), -ENOENT);
        CHECK_INT(queue_move(q, id, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_SYNC), 0);
        CHECK_INT(queue_move(q, id, QUEUE_DEFERRED, QUEUE_HOLD, 0), 0);
        /* Never replaces: a file of the same name in the target stays as it was. */
        int fd = openat(queue_dirfd(q, QUEUE_DEFERRED), id, O_CREAT | O_WRONLY | O_EXCL, 0600);
        CHECK(fd >= 0);
        close(fd);
        CHECK_INT(queue_move(q, id, QUEUE_HOLD, QUEUE_DEFERRED, 0), -EEXIST);
        CHECK(exists_at(queue_dirfd(q, QUEUE_HOLD), id));
        CHECK_INT(queue_remove(q, id, QUEUE_DEFERRED, 0), 0);
        /* Untrusted names never reach the file system. */
        CHECK_INT(queue_move(q, "../hold/x", QUEUE_HOLD, QUEUE_DEFERRED, 0), -EINVAL);
        CHECK_INT(queue_move(q, id, QUEUE_HOLD, QUEUE_PUBLIC, 0), -EINVAL);
        CHECK_INT(queue_remove(q, "ABC/DEF", QUEUE_HOLD, 0), -EINVAL);
        CHECK_INT(queue_remove(q, id, QUEUE_HOLD, QUEUE_SYNC), 0);
        CHECK_INT(queue_remove(q, id, QUEUE_HOLD, 0), -ENOENT);
        free(id);
        queue_close(q);
        free(dir);
}

TEST(mark_done_survives_reopen)
{
        char *dir = make_queue("mark");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct qfile_rcpt rs[3] = {{.address = "a@x"}, {.address = "b@x"}, {.address = "c@x"}};
        struct qfile_msg m = test_msg(rs, 3);
        struct queue_file *f;
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_write(f, &m, 0), 0);
        CHECK_INT(queue_file_commit(q, f), 0);
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);
        CHECK_INT(queue_move(q, id, QUEUE_INCOMING, QUEUE_ACTIVE, 0), 0);

        struct stat before, after;
        CHECK_INT(fstatat(queue_dirfd(q, QUEUE_ACTIVE), id, &before, 0), 0);
        int fd;
        CHECK_INT(queue_open_file(q, id, QUEUE_ACTIVE, O_RDWR, &fd), 0);
        char *data;
        size_t len;
        CHECK_INT(queue_read_fd(fd, &data, &len), 0);
        struct qfile_msg out;
        CHECK_INT(qfile_decode(data, len, &out, NULL), 0);
        CHECK_INT(queue_mark_rcpt(fd, &out.rcpts[1], QFILE_RCPT_DELIVERED, 1234567, "2.0.0", 0), 0);
        CHECK_INT(queue_mark_rcpt(fd, &out.rcpts[2], QFILE_RCPT_BOUNCED, 1234568, "5.1.1", 0), 0);
        CHECK_INT(queue_mark_rcpt(fd, &out.rcpts[0], QFILE_RCPT_DELIVERED, 1, "bad status", 0), -EINVAL);
        struct qfile_rcpt bogus = {.slot_offset = 33};
        CHECK_INT(queue_mark_rcpt(fd, &bogus, QFILE_RCPT_DELIVERED, 1, "2.0.0", 0), -EINVAL);
        qfile_msg_done(&out);
        free(data);
        close(fd);

        CHECK_INT(fstatat(queue_dirfd(q, QUEUE_ACTIVE), id, &after, 0), 0);
        CHECK_INT(after.st_ino, before.st_ino); /* rewritten in place, not replaced */
        CHECK_INT(after.st_size, before.st_size);
        CHECK_INT(load(q, id, QUEUE_ACTIVE, &out, &data), 0);
        CHECK_INT(out.rcpts[0].state, QFILE_RCPT_PENDING);
        CHECK_INT(out.rcpts[1].state, QFILE_RCPT_DELIVERED);
        CHECK_INT(out.rcpts[1].done_usec, 1234567);
        CHECK_STR(out.rcpts[1].dsn_status, "2.0.0");
        CHECK_INT(out.rcpts[2].state, QFILE_RCPT_BOUNCED);
        CHECK_STR(out.rcpts[2].dsn_status, "5.1.1");
        CHECK_STR(out.rcpts[2].address, "c@x");
        qfile_msg_done(&out);
        free(data);
        free(id);
        queue_close(q);
        free(dir);
}

/* The attempted slot is written in place, read back by the agent's re-read, and replaced by the mark. */
TEST(attempt_record_then_mark)
{
        char *dir = make_queue("attempt");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct qfile_rcpt rs[2] = {{.address = "a@x"}, {.address = "b@x"}};
        struct qfile_msg m = test_msg(rs, 2);
        struct queue_file *f;
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_write(f, &m, 0), 0);
        CHECK_INT(queue_file_commit(q, f), 0);
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);
        CHECK_INT(queue_move(q, id, QUEUE_INCOMING, QUEUE_ACTIVE, 0), 0);

        int fd;
        CHECK_INT(queue_open_file(q, id, QUEUE_ACTIVE, O_RDWR, &fd), 0);
        char *data;
        size_t len;
        CHECK_INT(queue_read_fd(fd, &data, &len), 0);
        struct qfile_msg out;
        CHECK_INT(qfile_decode(data, len, &out, NULL), 0);
        CHECK_INT(out.version, QFILE_VERSION);
        struct qfile_rcpt *rc = &out.rcpts[1];
        rc->state = QFILE_RCPT_ATTEMPTED;
        rc->attempt_usec = 1712345678000001ull;
        CHECK_INT(queue_write_rcpt_slot(fd, rc, false), 0);
        rc->mbox_dev = 0x801;
        rc->mbox_ino = 99;
        rc->mbox_size = 12345;
        CHECK_INT(queue_write_rcpt_slot(fd, rc, true), 0);
        rc->attempt_usec = 0; /* refused: an attempt has a time */
        CHECK_INT(queue_write_rcpt_slot(fd, rc, true), -EINVAL);

        struct qfile_rcpt again = {.slot_offset = rc->slot_offset};
        CHECK_INT(queue_read_rcpt_state(fd, &again), 0);
        CHECK_INT(again.state, QFILE_RCPT_ATTEMPTED);
        CHECK(again.attempt_usec == 1712345678000001ull && again.mbox_dev == 0x801 && again.mbox_ino == 99 &&
              again.mbox_size == 12345);
        free(data);
        qfile_msg_done(&out);
        CHECK_INT(load(q, id, QUEUE_ACTIVE, &out, &data), 0); /* the checksum does not cover slots */
        CHECK_INT(out.rcpts[0].state, QFILE_RCPT_PENDING);
        CHECK_INT(out.rcpts[1].state, QFILE_RCPT_ATTEMPTED);
        CHECK_INT(queue_mark_rcpt(fd, &out.rcpts[1], QFILE_RCPT_DELIVERED, 5, "2.0.0", 0), 0);
        qfile_msg_done(&out);
        free(data);
        close(fd);
        CHECK_INT(load(q, id, QUEUE_ACTIVE, &out, &data), 0);
        CHECK_INT(out.rcpts[1].state, QFILE_RCPT_DELIVERED);
        CHECK(out.rcpts[1].attempt_usec == 0 && out.rcpts[1].mbox_ino == 0);
        CHECK_STR(out.rcpts[1].dsn_status, "2.0.0");
        qfile_msg_done(&out);
        free(data);
        free(id);
        queue_close(q);
        free(dir);
}

TEST(delivery_locks_are_per_recipient)
{
        char *dir = make_queue("dlock");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct qfile_rcpt rs[3] = {{.address = "a@x"}, {.address = "b@x"}, {.address = "c@y"}};
        struct qfile_msg m = test_msg(rs, 3);
        struct queue_file *f;
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_write(f, &m, 0), 0);
        CHECK_INT(queue_file_commit(q, f), 0);
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);
        CHECK_INT(queue_move(q, id, QUEUE_INCOMING, QUEUE_ACTIVE, 0), 0);

        /* Two deliveries of disjoint recipients, even in one process: both get the file. */
        const size_t first[] = {0, 1}, second[] = {2, 99}, overlap[] = {1};
        int fd1 = -1, fd2 = -1, fd3 = -1;
        char *d1 = NULL, *d2 = NULL, *d3 = NULL;
        size_t l1, l2, l3;
        struct qfile_msg m1, m2, m3;
        CHECK_INT(queue_open_for_delivery(q, id, QUEUE_ACTIVE, first, 2, &fd1, &d1, &l1, &m1), 0);
        CHECK_INT(queue_open_for_delivery(q, id, QUEUE_ACTIVE, second, 2, &fd2, &d2, &l2, &m2), 0);
        CHECK_INT(m2.n_rcpts, 3);
        /* A second delivery of a recipient being delivered: refused, nothing returned. */
        CHECK_INT(queue_open_for_delivery(q, id, QUEUE_ACTIVE, overlap, 1, &fd3, &d3, &l3, &m3), -EBUSY);
        CHECK_INT(fd3, -1);
        CHECK(d3 == NULL);

        /* Marked by the first, then released: the next delivery sees it done. */
        CHECK_INT(queue_mark_rcpt(fd1, &m1.rcpts[1], QFILE_RCPT_DELIVERED, 5, "2.0.0", 0), 0);
        qfile_msg_done(&m1);
        free(d1);
        close(fd1);
        CHECK_INT(queue_open_for_delivery(q, id, QUEUE_ACTIVE, overlap, 1, &fd3, &d3, &l3, &m3), 0);
        CHECK_INT(m3.rcpts[1].state, QFILE_RCPT_DELIVERED);
        CHECK_INT(m3.rcpts[0].state, QFILE_RCPT_PENDING);
        CHECK_INT(queue_open_for_delivery(q, id, QUEUE_DEFERRED, overlap, 1, &fd1, &d1, &l1, &m1), -ENOENT);
        qfile_msg_done(&m3);
        free(d3);
        close(fd3);
        qfile_msg_done(&m2);
        free(d2);
        close(fd2);
        free(id);
        queue_close(q);
        free(dir);
}

static void put_file(int dirfd, const char *name, const void *data, size_t len)
{
        int fd = openat(dirfd, name, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0 || write(fd, data, len) != (ssize_t)len)
                abort();
        close(fd);
}

TEST(recovery_removes_half_written_and_keeps_complete)
{
        char *dir = make_queue("recover");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        int ifd = queue_dirfd(q, QUEUE_INCOMING), afd = queue_dirfd(q, QUEUE_ACTIVE);
        struct qfile_rcpt r = {.address = "r@example.com"};
        struct qfile_msg m = test_msg(&r, 1);

        /* Two complete messages: one in incoming, one in active (its scheduler died). */
        struct queue_file *f;
        char *ids[2];
        for (int i = 0; i < 2; i++) {
                CHECK_INT(queue_file_create(q, &f), 0);
                CHECK_INT(queue_file_write(f, &m, 0), 0);
                CHECK_INT(queue_file_commit(q, f), 0);
                ids[i] = xstrdup(queue_file_id(f));
                queue_file_free(f);
        }
        CHECK_INT(queue_move(q, ids[1], QUEUE_INCOMING, QUEUE_ACTIVE, 0), 0);

        /* A writer that crashed mid-write: a temporary name with half a file. */
        struct buf full = BUF_INIT;
        CHECK_INT(qfile_encode_all(&m, &full), 0);
        put_file(ifd, QUEUE_TMP_PREFIX "999.1.2", full.data, full.len / 2);
        /* A writer that crashed before writing anything. */
        put_file(ifd, QUEUE_TMP_PREFIX "999.1.3", "", 0);
        /* A file named by an ID but broken (storage fault): acknowledged once, so kept in corrupt/. */
        put_file(ifd, "00001ABCDE", full.data, full.len - 3);
        /* Something that is not ours. */
        put_file(ifd, "README", "x", 1);
        /* A newer format version: left for a newer postd. */
        full.data[8] = 9;
        put_file(ifd, "00002ABCDE", full.data, full.len);

        struct queue_recover_stats s;
        CHECK_INT(queue_recover(q, QUEUE_ACTIVE, &s), 0);
        CHECK_INT(s.removed, 2);
        CHECK_INT(s.requeued, 1);
        CHECK_INT(s.complete, 2);
        CHECK_INT(s.corrupt, 1);
        CHECK_INT(s.skipped, 2);
        CHECK(exists_at(afd, ids[0]));
        CHECK(exists_at(afd, ids[1]));
        CHECK(!exists_at(ifd, QUEUE_TMP_PREFIX "999.1.2"));
        CHECK(!exists_at(ifd, QUEUE_TMP_PREFIX "999.1.3"));
        CHECK(exists_at(queue_dirfd(q, QUEUE_CORRUPT), "00001ABCDE"));
        CHECK(exists_at(ifd, "README"));
        CHECK(exists_at(ifd, "00002ABCDE"));
        CHECK_INT(count_entries(dir, "incoming"), 2);

        /* Running again finds the same messages and changes nothing more. */
        CHECK_INT(queue_recover(q, QUEUE_INCOMING, &s), 0);
        CHECK_INT(s.removed, 0);
        CHECK_INT(s.requeued, 2);
        CHECK_INT(s.complete, 2);
        CHECK_INT(s.corrupt, 0);
        CHECK(exists_at(ifd, ids[0]));
        CHECK(exists_at(ifd, ids[1]));
        CHECK_INT(count_entries(dir, "active"), 0);
        CHECK_INT(queue_recover(q, QUEUE_CORRUPT, &s), -EINVAL);

        buf_done(&full);
        free(ids[0]);
        free(ids[1]);
        queue_close(q);
        free(dir);
}

/* Files larger than the whole-read bound are checked in chunks, with the same verdicts. */
TEST(recovery_checks_big_files_in_chunks)
{
        char *dir = make_queue("recover-big");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        int ifd = queue_dirfd(q, QUEUE_INCOMING), cfd = queue_dirfd(q, QUEUE_CORRUPT);
        struct qfile_rcpt r = {.address = "r@example.com"};
        struct qfile_msg m = test_msg(&r, 1);
        struct buf content = BUF_INIT;
        while (content.len < 3 * 1024 * 1024)
                buf_printf(&content, "a body line of a big message, number %zu\n", content.len);
        m.content = content.data;
        m.content_len = content.len;
        struct buf full = BUF_INIT;
        CHECK_INT(qfile_encode_all(&m, &full), 0);
        size_t mid = full.len / 2, end_rec = full.len - (QFILE_REC_HDR_LEN + QFILE_END_PAYLOAD_LEN);

        put_file(ifd, "00001AAAAA", full.data, full.len); /* complete */
        full.data[mid] ^= 1;
        put_file(ifd, "00002AAAAA", full.data, full.len); /* one flipped content byte */
        full.data[mid] ^= 1;
        put_file(ifd, "00003AAAAA", full.data, full.len - 100); /* truncated in the end record */
        put_file(ifd, "00004AAAAA", full.data, mid);            /* truncated in the content */
        buf_putc(&full, 'x');
        put_file(ifd, "00005AAAAA", full.data, full.len); /* data after the end record */
        buf_truncate(&full, full.len - 1);
        full.data[end_rec + 5] ^= 1;
        put_file(ifd, "00006AAAAA", full.data, full.len); /* end record offset wrong */
        full.data[end_rec + 5] ^= 1;
        full.data[8] = 9;
        put_file(ifd, "00007AAAAA", full.data, full.len); /* a newer version: left alone */
        full.data[8] = 1;
        full.data[20] ^= 1;
        put_file(ifd, "00008AAAAA", full.data, full.len); /* a flipped envelope byte */

        struct queue_recover_stats s;
        CHECK_INT(queue_recover(q, QUEUE_INCOMING, &s), 0);
        CHECK_INT(s.complete, 1);
        CHECK_INT(s.corrupt, 6);
        CHECK_INT(s.skipped, 1);
        CHECK(exists_at(ifd, "00001AAAAA"));
        CHECK(exists_at(ifd, "00007AAAAA"));
        const char *bad[] = {"00002AAAAA", "00003AAAAA", "00004AAAAA",
                             "00005AAAAA", "00006AAAAA", "00008AAAAA"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                CHECK(exists_at(cfd, bad[i]));
        buf_done(&full);
        buf_done(&content);
        queue_close(q);
        free(dir);
}

TEST(recovery_of_a_file_left_in_two_queues)
{
        /* A move whose source removal was lost: the same inode under active/ and incoming/. */
        char *dir = make_queue("twice");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct qfile_rcpt r = {.address = "r@example.com"};
        struct qfile_msg m = test_msg(&r, 1);
        struct queue_file *f;
        CHECK_INT(queue_file_create(q, &f), 0);
        CHECK_INT(queue_file_write(f, &m, 0), 0);
        CHECK_INT(queue_file_commit(q, f), 0);
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);
        CHECK_INT(linkat(queue_dirfd(q, QUEUE_INCOMING), id, queue_dirfd(q, QUEUE_ACTIVE), id, 0), 0);
        struct queue_recover_stats s;
        CHECK_INT(queue_recover(q, QUEUE_INCOMING, &s), 0);
        CHECK_INT(s.requeued, 1);
        CHECK_INT(s.complete, 1);
        CHECK_INT(s.skipped, 0);
        CHECK(!exists_at(queue_dirfd(q, QUEUE_ACTIVE), id));
        CHECK(exists_at(queue_dirfd(q, QUEUE_INCOMING), id));
        free(id);
        queue_close(q);
        free(dir);
}
