/* test_generator.c: postfix-generator's core: instance main.cf/master.cf text -> unit drop-ins. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "catalog.h"
#include "fileio.h"
#include "generator.h"
#include "postd-build.h"
#include "unit.h"

struct fixture {
        struct config *c;
        struct mastercf m;
        struct gen_output out;
        int r;
};

/* gen_instance's check_local for the next run() (a daemon-reload on a running host when true). */
static bool check_local;

static void run(struct fixture *f, const char *dir, const char *maincf, const char *mastercf,
                bool is_default, bool ipv6)
{
        *f = (struct fixture){0};
        if (config_load_text(dir, maincf, strlen(maincf), &f->c) < 0)
                abort();
        if (mastercf_parse(mastercf, strlen(mastercf), &f->m) < 0)
                abort();
        struct gen_instance in = {.config = f->c,
                                  .master = &f->m,
                                  .is_default = is_default,
                                  .have_ipv6 = ipv6,
                                  .template_path = "/usr/lib/systemd/system/postfix@.service",
                                  .check_local = check_local};
        f->r = gen_instance(&in, &f->out);
}

static void done(struct fixture *f)
{
        gen_output_done(&f->out);
        mastercf_done(&f->m);
        config_free(f->c);
}

static const char *text_of(struct fixture *f, const char *path)
{
        const struct gen_file *g = gen_output_find(&f->out, path);
        return g && g->text ? g->text : "";
}

static bool has_message(struct fixture *f, const char *needle)
{
        for (size_t i = 0; i < f->out.messages.n; i++)
                if (strstr(f->out.messages.v[i], needle))
                        return true;
        return false;
}

TEST(instance_on_port_2525)
{
        struct fixture f;
        run(&f, "/etc/postfix-dept1",
            "multi_instance_name = postfix-dept1\nmulti_instance_enable = yes\n"
            "queue_directory = /var/spool/postfix-dept1\ndata_directory = /var/lib/postfix-dept1\n"
            "inet_interfaces = 192.0.2.48\n",
            "2525 inet n - n - - smtpd\npickup unix n - n 60 1 pickup\n", false, true);
        CHECK_INT(f.r, 0);
        const char *sock = text_of(&f, "postfix@dept1.socket.d/50-postd-listen.conf");
        CHECK(strstr(sock, "ListenStream=192.0.2.48:2525\n"));
        CHECK(strstr(sock, "FileDescriptorName=2525\n"));
        CHECK(!strstr(sock, "ListenStream=[")); /* an IPv4 address gives no IPv6 listener */
        /* No FreeBind=: a specific address is bound once the network is online. */
        CHECK(strstr(sock, "[Unit]\nDefaultDependencies=no\n"));
        CHECK(strstr(sock, "Wants=network-online.target\nAfter=sysinit.target network-online.target\n"));
        CHECK(!strstr(sock, "FreeBind"));
        const char *svc = text_of(&f, "postfix@dept1.service.d/50-postd-instance.conf");
        CHECK(strstr(
                svc,
                "Wants=postfix@dept1.socket\nAfter=postfix@dept1.socket\nPartOf=postfix@dept1.socket\n"));
        CHECK(!strstr(svc, "Requires=")); /* a running instance's "systemctl start" must not need it */
        CHECK(strstr(svc, "Environment=MAIL_CONFIG=/etc/postfix-dept1\n"));
        CHECK(strstr(svc, "SyslogIdentifier=postfix-dept1/master\n"));
        CHECK(strstr(svc, "ReadWritePaths=-/var/spool/postfix-dept1 -/var/lib/postfix-dept1\n"));
        CHECK(strstr(svc, "ReadWritePaths=-/var/mail\n"));
        CHECK(!strstr(svc, "ProtectHome=no")); /* no home_mailbox: homes stay read-only */
        const struct gen_file *w = gen_output_find(&f.out, "postfix.target.wants/postfix@dept1.service");
        CHECK(w && w->symlink && !w->text);
        CHECK_STR(w->symlink, "/usr/lib/systemd/system/postfix@.service");
        done(&f);
}

TEST(port_names_protocols_and_loopback)
{
        struct fixture f;
        run(&f, "/etc/postfix", "inet_interfaces = localhost\ninet_protocols = all\n",
            "smtp inet n - n - - smtpd\nsubmission inet n - n - - smtpd\n", true, true);
        CHECK_INT(f.r, 0);
        const char *s = text_of(&f, "postfix@-.socket.d/50-postd-listen.conf");
        CHECK(strstr(s, "ListenStream=127.0.0.1:25\nListenStream=[::1]:25\n"));
        CHECK(!strstr(s, "network-online")); /* loopback is up before any socket */
        CHECK(strstr(s, "FileDescriptorName=smtp\n"));
        /* A second inet service gets a socket unit of its own, so its descriptors carry its name. */
        const char *sub = text_of(&f, "postfix-submission.socket");
        CHECK(strstr(sub, "Service=postfix@-.service\n"));
        CHECK(strstr(sub, "ListenStream=127.0.0.1:587\n"));
        CHECK(strstr(sub, "FileDescriptorName=submission\n"));
        /* Its stop and restart leave the listeners open (issue 11); postfix.target's stop closes them. */
        CHECK(strstr(sub, "PartOf=postfix.target\n"));
        CHECK(!strstr(sub, "PartOf=postfix@"));
        const char *svc = text_of(&f, "postfix@-.service.d/50-postd-instance.conf");
        CHECK(strstr(svc, "Sockets=postfix@-.socket\nSockets=postfix-submission.socket\n"));
        /* Single instance, multi-instance management never initialised: it starts with the target. */
        CHECK(gen_output_find(&f.out, "postfix.target.wants/postfix@-.service") != NULL);
        done(&f);

        /* Without IPv6 on the host, "all" listens on IPv4 only, as the master does. */
        run(&f, "/etc/postfix", "inet_interfaces = all\n", "smtp inet n - n - - smtpd\n", true, false);
        CHECK_INT(f.r, 0);
        s = text_of(&f, "postfix@-.socket.d/50-postd-listen.conf");
        CHECK(strstr(s, "ListenStream=0.0.0.0:25\n"));
        CHECK(!strstr(s, "network-online")); /* the wildcard binds before any address exists */
        CHECK(!strstr(s, "[::]"));
        done(&f);

        run(&f, "/etc/postfix", "inet_interfaces = all\ninet_protocols = ipv6\n",
            "smtp inet n - n - - smtpd\n", true, true);
        s = text_of(&f, "postfix@-.socket.d/50-postd-listen.conf");
        CHECK(strstr(s, "ListenStream=[::]:25\n"));
        CHECK(!strstr(s, "0.0.0.0"));
        done(&f);
}

TEST(service_host_and_escaping)
{
        struct fixture f;
        run(&f, "/etc/postfix-out",
            "multi_instance_name = postfix-out\ninet_interfaces = all\ninet_protocols = ipv4\n",
            "smtp inet n - n - - smtpd\n127.0.0.1:10025 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, 0);
        const char *a = text_of(&f, "postfix-out-127.0.0.1:10025.socket");
        CHECK(strstr(a, "ListenStream=127.0.0.1:10025\n"));
        /* ':' cannot be in a FileDescriptorName: the master matches it by address instead. */
        CHECK(!strstr(a, "FileDescriptorName"));
        done(&f);

        /* inet_protocols = ipv4: an IPv6 service address gives no listener, and the master would refuse. */
        run(&f, "/etc/postfix-out", "multi_instance_name = postfix-out\ninet_protocols = ipv4\n",
            "[::1]:10026 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, -EINVAL);
        CHECK(has_message(&f, "no address to listen on"));
        done(&f);

        run(&f, "/etc/postfix-out", "multi_instance_name = postfix-out\ninet_protocols = all\n",
            "[::1]:10026 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, 0);
        CHECK(strstr(text_of(&f, "postfix@out.socket.d/50-postd-listen.conf"),
                     "ListenStream=[::1]:10026\n"));
        done(&f);

        run(&f, "/etc/postfix-out", "multi_instance_name = postfix-out\ninet_protocols = all\n",
            "smtp inet n - n - - smtpd\n[::1]:10026 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, 0);
        /* Unit names take no brackets: systemd's \xNN escaping. */
        CHECK(gen_output_find(&f.out, "postfix-out-\\x5b::1\\x5d:10026.socket") != NULL);
        done(&f);
}

TEST(master_service_disable_inet_and_enable)
{
        struct fixture f;
        /* What postmulti -e create writes: the instance exists, listens nowhere and says so. */
        run(&f, "/etc/postfix-dept2",
            "multi_instance_name = postfix-dept2\nmaster_service_disable = inet\n"
            "queue_directory = /var/spool/postfix-dept2\ndata_directory = /var/lib/postfix-dept2\n",
            "smtp inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, 0);
        CHECK(gen_output_find(&f.out, "postfix@dept2.socket.d/50-postd-listen.conf") == NULL);
        const char *svc = text_of(&f, "postfix@dept2.service.d/50-postd-instance.conf");
        CHECK(!strstr(svc, "Requires="));
        CHECK(!strstr(svc, "Wants="));
        CHECK(!strstr(svc, "Sockets="));
        CHECK(has_message(&f, "disabled by master_service_disable = inet"));
        /* multi_instance_enable defaults to no: not started by postfix.target. */
        CHECK(gen_output_find(&f.out, "postfix.target.wants/postfix@dept2.service") == NULL);
        done(&f);

        run(&f, "/etc/postfix-dept2",
            "multi_instance_name = postfix-dept2\nmaster_service_disable = smtp/inet\nhome_mailbox = "
            "Maildir/\n",
            "smtp inet n - n - - smtpd\n2525 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, 0);
        CHECK(strstr(text_of(&f, "postfix@dept2.socket.d/50-postd-listen.conf"), ":2525\n"));
        CHECK(strstr(text_of(&f, "postfix@dept2.service.d/50-postd-instance.conf"),
                     "ReadWritePaths=-/home\n"));
        done(&f);

        /* The default instance after postmulti -e init follows multi_instance_enable too. */
        run(&f, "/etc/postfix", "multi_instance_wrapper = ${command_directory}/postmulti -p --\n",
            "smtp inet n - n - - smtpd\n", true, true);
        CHECK(gen_output_find(&f.out, "postfix.target.wants/postfix@-.service") == NULL);
        done(&f);
}

TEST(broken_instances_are_skipped_whole)
{
        struct fixture f;
        const char *bad[][2] = {
                {"multi_instance_name = dept3\n", "smtp inet n - n - - smtpd\n"},       /* no postfix- */
                {"multi_instance_name = postfix-a/b\n", "smtp inet n - n - - smtpd\n"}, /* bad char */
                {"multi_instance_name = postfix-a\n", "nosuchport99 inet n - n - - smtpd\n"},
                {"multi_instance_name = postfix-a\ninet_interfaces = mail.example.com\n",
                 "smtp inet n - n - - smtpd\n"}, /* a name would need DNS at boot */
                {"multi_instance_name = postfix-a\ninet_protocols = ipv5\n", "smtp inet n - n - - smtpd\n"},
                {"multi_instance_name = postfix-a\nqueue_directory = /var/spool/with space\n",
                 "smtp inet n - n - - smtpd\n"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                run(&f, "/etc/postfix-a", bad[i][0], bad[i][1], false, true);
                if (f.r != -EINVAL || f.out.n_files != 0 || f.out.messages.n == 0)
                        unit_fail(__FILE__, __LINE__, "case %zu: r=%d files=%zu", i, f.r, f.out.n_files);
                CHECK(has_message(&f, "skipped"));
                done(&f);
        }
}

/* 192.0.2.0/24 is TEST-NET-1: on no interface of a test host; only a local bind to port 0 is tried. */
TEST(address_on_no_interface_is_skipped_after_boot)
{
        struct fixture f;
        const char *maincf = "multi_instance_name = postfix-far\ninet_interfaces = 127.0.0.1, 192.0.2.48\n"
                             "inet_protocols = ipv4\nmulti_instance_enable = yes\n";
        check_local = true;
        run(&f, "/etc/postfix-far", maincf, "2525 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, -EINVAL);
        CHECK_INT(f.out.n_files, 0); /* skipped whole: no socket, no drop-in, not wanted by the target */
        CHECK(has_message(&f,
                          "postfix@far.service: skipped: inet_interfaces names 192.0.2.48, an address no "
                          "network interface of this host has"));
        done(&f);

        /* An address of the service itself names its master.cf line. */
        run(&f, "/etc/postfix-far", "multi_instance_name = postfix-far\ninet_protocols = ipv4\n",
            "smtp inet n - n - - smtpd\n192.0.2.48:10025 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, -EINVAL);
        CHECK(has_message(&f, "skipped: master.cf line 2: service \"192.0.2.48:10025/inet\" listens on "
                              "192.0.2.48, an address no network interface"));
        done(&f);

        /* Local addresses (all of 127.0.0.0/8, the wildcard) pass the same check. */
        run(&f, "/etc/postfix-far",
            "multi_instance_name = postfix-far\ninet_interfaces = 127.0.0.1, 127.0.0.2, all\n"
            "inet_protocols = ipv4\n",
            "2525 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, 0);
        CHECK(strstr(text_of(&f, "postfix@far.socket.d/50-postd-listen.conf"),
                     "ListenStream=127.0.0.2:2525\n"));
        done(&f);

        /* At boot the network is not up yet: the instance is generated, its socket reports the bind. */
        check_local = false;
        run(&f, "/etc/postfix-far", maincf, "2525 inet n - n - - smtpd\n", false, true);
        CHECK_INT(f.r, 0);
        CHECK(strstr(text_of(&f, "postfix@far.socket.d/50-postd-listen.conf"),
                     "ListenStream=192.0.2.48:2525\n"));
        done(&f);
}

TEST(unit_instance_names)
{
        struct config *c = NULL;
        CHECK_INT(config_load_text("/etc/postfix-sales", "", 0, &c), 0);
        char *n = gen_unit_instance(c, false);
        CHECK_STR(n, "sales"); /* from the directory when multi_instance_name is unset */
        free(n);
        n = gen_unit_instance(c, true);
        CHECK_STR(n, "-");
        free(n);
        config_free(c);
}

TEST(catalog_ids_match_the_shipped_catalog)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        CHECK_INT(read_file(POSTD_SOURCE_DIR "/units/postfix.catalog", 1 << 20, &text, &len), 0);
        const char *ids[] = {CATALOG_INET_DISABLED,  CATALOG_ADDRESS_IN_USE,
                             CATALOG_SUBMIT_REFUSED, CATALOG_BIND_CONNECT_TIMEOUT,
                             CATALOG_LOOPS_BACK,     CATALOG_UNSUPPORTED_TABLE};
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                _cleanup_free_ char *line = xasprintf("\n-- %s\nSubject: ", ids[i]);
                CHECK(strlen(ids[i]) == 32);
                CHECK(strstr(text, line) != NULL);
        }
}
