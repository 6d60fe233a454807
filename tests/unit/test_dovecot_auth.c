/* test_dovecot_auth.c: Dovecot auth-client protocol: handshake, replies, request formatting, mechanism
 * filter. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "dovecot_auth.h"

TEST(handshake)
{
        struct dovecot_auth_handshake h = {0};
        CHECK_INT(dovecot_auth_handshake_line(&h, "VERSION\t1\t2"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH\tPLAIN\tplaintext"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH\tLOGIN\tplaintext"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH\tANONYMOUS\tanonymous"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH\tCRAM-MD5\tdictionary\tactive"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "SPID\t1234"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "CUID\t7"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "COOKIE\tabcdef"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "DONE"), 1);
        CHECK(h.done);
        CHECK_INT(h.n_mechs, 4);
        CHECK_STR(h.mechs[0].name, "PLAIN");
        CHECK_INT(h.mechs[0].flags, DOVECOT_MECH_PLAINTEXT);
        CHECK_STR(h.mechs[3].name, "CRAM-MD5");
        CHECK_INT(h.mechs[3].flags, DOVECOT_MECH_DICTIONARY | DOVECOT_MECH_ACTIVE);
}

TEST(handshake_errors)
{
        struct dovecot_auth_handshake h = {0};
        /* a line before VERSION, or another major version, is not Dovecot's protocol */
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH\tPLAIN"), -EPROTO);
        h = (struct dovecot_auth_handshake){0};
        CHECK_INT(dovecot_auth_handshake_line(&h, "VERSION\t2\t0"), -EPROTO);
        h = (struct dovecot_auth_handshake){0};
        CHECK_INT(dovecot_auth_handshake_line(&h, "VERSION\tx\t0"), -EPROTO);
        h = (struct dovecot_auth_handshake){0};
        CHECK_INT(dovecot_auth_handshake_line(&h, "VERSION\t1\t1"), 0);
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH"), -EPROTO);
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH\t"), -EPROTO);
        CHECK_INT(dovecot_auth_handshake_line(&h, "MECH\tBAD NAME"), -EPROTO);
        CHECK_INT(h.n_mechs, 0);
}

TEST(replies)
{
        struct dovecot_auth_reply r;
        CHECK_INT(dovecot_auth_reply_parse("OK\t1\tuser=alice", &r), 0);
        CHECK_INT(r.type, DOVECOT_AUTH_OK);
        CHECK_INT(r.id, 1);
        CHECK_STR(r.user, "alice");
        dovecot_auth_reply_done(&r);

        CHECK_INT(dovecot_auth_reply_parse("CONT\t7\tVXNlcm5hbWU6", &r), 0);
        CHECK_INT(r.type, DOVECOT_AUTH_CONT);
        CHECK_INT(r.id, 7);
        CHECK_STR(r.data, "VXNlcm5hbWU6");
        dovecot_auth_reply_done(&r);

        CHECK_INT(dovecot_auth_reply_parse("CONT\t2\t", &r), 0);
        CHECK_STR(r.data, "");
        dovecot_auth_reply_done(&r);

        CHECK_INT(dovecot_auth_reply_parse("FAIL\t3\tuser=bob\treason=Password \001texpired\001n", &r), 0);
        CHECK_INT(r.type, DOVECOT_AUTH_FAIL);
        CHECK_STR(r.user, "bob");
        CHECK_STR(r.reason, "Password \texpired\n");
        CHECK(!r.temp);
        dovecot_auth_reply_done(&r);

        CHECK_INT(dovecot_auth_reply_parse("FAIL\t4\ttemp", &r), 0);
        CHECK(r.temp);
        CHECK(r.user == NULL);
        dovecot_auth_reply_done(&r);

        CHECK_INT(dovecot_auth_reply_parse("CONT\t5", &r), -EBADMSG);
        CHECK_INT(dovecot_auth_reply_parse("CONT\t5\tab\rcd", &r), -EBADMSG);
        CHECK_INT(dovecot_auth_reply_parse("OK", &r), -EBADMSG);
        CHECK_INT(dovecot_auth_reply_parse("OK\t-1", &r), -EBADMSG);
        CHECK_INT(dovecot_auth_reply_parse("OK\t1x", &r), -EBADMSG);
        CHECK_INT(dovecot_auth_reply_parse("HELLO\t1", &r), -EBADMSG);
        CHECK_INT(dovecot_auth_reply_parse("", &r), -EBADMSG);
}

TEST(base64)
{
        CHECK(dovecot_auth_base64_valid(""));
        CHECK(dovecot_auth_base64_valid("AGFsaWNlAHNlY3JldA=="));
        CHECK(dovecot_auth_base64_valid("YWJj"));
        CHECK(!dovecot_auth_base64_valid("YWJ=j"));
        CHECK(!dovecot_auth_base64_valid("YW==="));
        CHECK(!dovecot_auth_base64_valid("YWJ\tAUTH"));
        CHECK(!dovecot_auth_base64_valid("YW\n"));
        CHECK(!dovecot_auth_base64_valid("YQ="));
}

TEST(format)
{
        _cleanup_free_ char *hello = dovecot_auth_client_hello(42);
        CHECK_STR(hello, "VERSION\t1\t2\nCPID\t42\n");

        struct dovecot_auth_request rq = {
                .id = 3,
                .mech = "PLAIN",
                .service = "smtp",
                .local_ip = "127.0.0.1",
                .remote_ip = "127.0.0.2",
                .secured = true,
                .initial = "AGEAYg==",
        };
        _cleanup_free_ char *a = dovecot_auth_format_auth(&rq);
        CHECK_STR(a, "AUTH\t3\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.2\tsecured\t"
                     "resp=AGEAYg==\n");
        rq.initial = "=";
        rq.secured = false;
        rq.local_ip = NULL;
        _cleanup_free_ char *b = dovecot_auth_format_auth(&rq);
        CHECK_STR(b, "AUTH\t3\tPLAIN\tservice=smtp\tnologin\trip=127.0.0.2\tresp=\n");
        rq.initial = NULL;
        _cleanup_free_ char *c = dovecot_auth_format_auth(&rq);
        CHECK_STR(c, "AUTH\t3\tPLAIN\tservice=smtp\tnologin\trip=127.0.0.2\n");
        /* nothing the client sends can add a field */
        rq.initial = "AGE\tuser=root";
        CHECK(dovecot_auth_format_auth(&rq) == NULL);
        rq.initial = NULL;
        rq.mech = "PLAIN\tresp=x";
        CHECK(dovecot_auth_format_auth(&rq) == NULL);
        rq.mech = "";
        CHECK(dovecot_auth_format_auth(&rq) == NULL);

        _cleanup_free_ char *d = dovecot_auth_format_cont(9, "YWxpY2U=");
        CHECK_STR(d, "CONT\t9\tYWxpY2U=\n");
        CHECK(dovecot_auth_format_cont(9, "x\ny") == NULL);
}

TEST(security_options)
{
        const char *words[] = {"noanonymous", "NOPLAINTEXT"};
        const char *bad = NULL;
        unsigned o = 0;
        CHECK_INT(dovecot_auth_security_options(words, 2, &o, &bad), 0);
        CHECK_INT(o, SASL_SEC_NOANONYMOUS | SASL_SEC_NOPLAINTEXT);
        CHECK(!dovecot_auth_mech_allowed(DOVECOT_MECH_PLAINTEXT, o));
        CHECK(!dovecot_auth_mech_allowed(DOVECOT_MECH_ANONYMOUS, o));
        CHECK(dovecot_auth_mech_allowed(DOVECOT_MECH_DICTIONARY | DOVECOT_MECH_ACTIVE, o));
        CHECK(dovecot_auth_mech_allowed(DOVECOT_MECH_PLAINTEXT, SASL_SEC_NOANONYMOUS));
        CHECK(!dovecot_auth_mech_allowed(DOVECOT_MECH_PRIVATE, 0));
        CHECK(!dovecot_auth_mech_allowed(DOVECOT_MECH_PLAINTEXT, SASL_SEC_MUTUAL_AUTH));
        const char *words2[] = {"noanonymous", "nosuch"};
        CHECK_INT(dovecot_auth_security_options(words2, 2, &o, &bad), -EINVAL);
        CHECK_STR(bad, "nosuch");
        CHECK_INT(dovecot_auth_security_options(NULL, 0, &o, &bad), 0);
        CHECK_INT(o, 0);
}
