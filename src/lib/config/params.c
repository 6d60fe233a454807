/* params.c: the parameter table and the value syntax of each parameter type. */
#include "params.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "macro.h"
#include "postd-build.h"

/*
 * Sorted by name (strcmp order; test_config checks it). Defaults follow Postfix's documented ones;
 * paths come from the build, host-derived values (PARAM_F_DYNAMIC) are filled in by config.c.
 */
static const struct param_def params[] = {
        {"2bounce_notice_recipient", PARAM_STRING, "postmaster", 0, 0,
         "who receives notices about undeliverable bounces"},
        {"access_map_reject_code", PARAM_INT, "554", 0, 0,
         "SMTP reply code for a REJECT result of an access table"},
        {"address_verify_map", PARAM_STRING, "btree:$data_directory/verify_cache", 0,
         PARAM_F_TABLES | PARAM_F_CREATED, "cache of address verification results"},
        {"alias_database", PARAM_LIST, "hash:/etc/aliases", 0, PARAM_F_TABLES | PARAM_F_CREATED,
         "alias databases that newaliases rebuilds"},
        {"alias_maps", PARAM_LIST, "hash:/etc/aliases", 0, PARAM_F_TABLES,
         "alias tables used by local delivery"},
        {"allow_mail_to_commands", PARAM_LIST, "alias, forward", 0, 0,
         "where local delivery may run commands (alias, forward, include)"},
        {"allow_mail_to_files", PARAM_LIST, "alias, forward", 0, 0,
         "where local delivery may write to files (alias, forward, include)"},
        {"allow_percent_hack", PARAM_BOOL, "yes", 0, 0, "rewrite user%domain into user@domain"},
        {"alternate_config_directories", PARAM_LIST, "", 0, 0,
         "extra configuration directories that unprivileged -c may name"},
        {"always_bcc", PARAM_STRING, "", 0, PARAM_F_INERT, "address that receives a copy of every message"},
        {"anvil_rate_time_unit", PARAM_TIME, "60s", 's', 0,
         "interval over which anvil counts connection, message, recipient and AUTH rates"},
        {"anvil_status_update_time", PARAM_TIME, "600s", 's', 0,
         "how often anvil logs the largest counts and rates it saw"},
        {"append_at_myorigin", PARAM_BOOL, "yes", 0, 0,
         "append @$myorigin to addresses without a domain in local mail"},
        {"append_dot_mydomain", PARAM_BOOL, "no", 0, 0,
         "append .$mydomain to addresses whose domain has no dot"},
        {"authorized_flush_users", PARAM_LIST, "static:anyone", 0, PARAM_F_TABLES,
         "users allowed to flush the queue"},
        {"authorized_mailq_users", PARAM_LIST, "static:anyone", 0, PARAM_F_TABLES,
         "users allowed to list the queue"},
        {"authorized_submit_users", PARAM_LIST, "static:anyone", 0, PARAM_F_TABLES,
         "users allowed to submit mail with sendmail"},
        {"biff", PARAM_BOOL, "yes", 0, 0, "notify the local biff service of new mail"},
        {"body_checks", PARAM_LIST, "", 0, PARAM_F_TABLES, "body content checks of the cleanup service"},
        {"body_checks_size_limit", PARAM_SIZE, "51200", 0, 0,
         "bytes of each body segment (MIME part) that body_checks inspect"},
        {"bounce_notice_recipient", PARAM_STRING, "postmaster", 0, 0,
         "who receives notices about bounced mail"},
        {"bounce_queue_lifetime", PARAM_TIME, "5d", 'd', 0, "how long a bounce message stays in the queue"},
        {"bounce_size_limit", PARAM_SIZE, "50000", 0, 0,
         "how much of the original message a bounce includes"},
        {"broken_sasl_auth_clients", PARAM_BOOL, "no", 0, 0,
         "also announce AUTH in the old AUTH=mechanisms form (Outlook Express 4, MS Exchange 5.0)"},
        {"canonical_classes", PARAM_LIST,
         "envelope_sender, envelope_recipient, header_sender, header_recipient", 0, 0,
         "addresses canonical_maps applies to"},
        {"canonical_maps", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "address mapping for envelope and header addresses"},
        {"command_directory", PARAM_STRING, POSTD_COMMAND_DIR, 0, 0,
         "where the postXXX commands are installed"},
        {"command_time_limit", PARAM_TIME, "1000s", 's', 0,
         "time limit for delivery to an external command"},
        {"compatibility_level", PARAM_STRING, "0", 0, 0, "backwards-compatibility level of defaults"},
        {"config_directory", PARAM_STRING, POSTD_CONFIG_DIR, 0, PARAM_F_DYNAMIC,
         "directory of main.cf and master.cf"},
        {"content_filter", PARAM_STRING, "", 0, 0,
         "after-queue content filter: transport:destination every message of this service goes to"},
        {"daemon_directory", PARAM_STRING, POSTD_DAEMON_DIR, 0, 0,
         "where the mail system daemons are installed"},
        {"daemon_timeout", PARAM_TIME, "18000s", 's', 0, "time limit for a daemon to handle one request"},
        {"data_directory", PARAM_STRING, POSTD_DATA_DIR, 0, 0,
         "directory for writable non-queue data (caches, random seed)"},
        {"debug_peer_level", PARAM_INT, "2", 0, 0, "extra verbosity for matching debug_peer_list hosts"},
        {"debug_peer_list", PARAM_LIST, "", 0, PARAM_F_TABLES, "hosts for which logging is more verbose"},
        {"default_database_type", PARAM_STRING, "hash", 0, 0,
         "table type that postmap and newaliases use by default"},
        {"default_delivery_slot_cost", PARAM_INT, "5", 0, 0,
         "how often a message may preempt others in the scheduler"},
        {"default_delivery_slot_discount", PARAM_INT, "50", 0, 0, "scheduler slot discount, percent"},
        {"default_delivery_slot_loan", PARAM_INT, "3", 0, 0, "scheduler slot loan"},
        {"default_destination_concurrency_failed_cohort_limit", PARAM_INT, "1", 0, 0,
         "failed connection cohorts before a destination is marked dead"},
        {"default_destination_concurrency_limit", PARAM_INT, "20", 0, 0,
         "parallel deliveries per destination"},
        {"default_destination_concurrency_negative_feedback", PARAM_STRING, "1", 0, 0,
         "concurrency decrease after a failed delivery"},
        {"default_destination_concurrency_positive_feedback", PARAM_STRING, "1", 0, 0,
         "concurrency increase after a successful delivery"},
        {"default_destination_rate_delay", PARAM_TIME, "0s", 's', 0,
         "pause between deliveries to one destination"},
        {"default_destination_recipient_limit", PARAM_INT, "50", 0, 0, "recipients per delivery"},
        {"default_extra_recipient_limit", PARAM_INT, "1000", 0, 0, "extra recipient slots of the scheduler"},
        {"default_minimum_delivery_slots", PARAM_INT, "3", 0, 0, "minimum slots before preemption"},
        {"default_privs", PARAM_STRING, "nobody", 0, 0,
         "account for deliveries to external files and commands"},
        {"default_process_limit", PARAM_INT, "100", 0, 0,
         "default maximum number of processes per master.cf service"},
        {"default_rbl_reply", PARAM_STRING,
         "$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; "
         "$rbl_reason}",
         0, PARAM_F_INERT,
         "reply template for DNS blocklist rejects (postd words the reply as the default)"},
        {"default_recipient_limit", PARAM_INT, "20000", 0, 0, "in-memory recipients per transport"},
        {"default_recipient_refill_delay", PARAM_TIME, "5s", 's', 0, "delay before refilling recipients"},
        {"default_recipient_refill_limit", PARAM_INT, "100", 0, 0, "recipients added per refill"},
        {"default_transport", PARAM_STRING, "smtp", 0, 0,
         "transport for destinations that are not local, virtual or relay"},
        {"default_transport_rate_delay", PARAM_TIME, "0s", 's', 0,
         "pause between deliveries by one transport"},
        {"defer_code", PARAM_INT, "450", 0, 0, "SMTP reply code for a defer restriction"},
        {"defer_transports", PARAM_LIST, "", 0, PARAM_F_INERT,
         "transports whose mail is held until a flush"},
        {"delay_logging_resolution_limit", PARAM_INT, "2", 0, 0,
         "digits after the decimal point in delay= logging"},
        {"delay_notice_recipient", PARAM_STRING, "postmaster", 0, 0,
         "who receives notices about delayed mail"},
        {"delay_warning_time", PARAM_TIME, "0h", 'h', 0,
         "when to warn the sender about delayed mail (0: never)"},
        {"disable_dns_lookups", PARAM_BOOL, "no", 0, 0,
         "old form of smtp_dns_support_level = disabled: no MX lookups, hosts through the native name "
         "service"},
        {"disable_mime_input_processing", PARAM_BOOL, "no", 0, 0,
         "treat the body as plain text: no MIME part headers for mime_header_checks/nested_header_checks"},
        {"disable_vrfy_command", PARAM_BOOL, "yes", 0, 0, "refuse the SMTP VRFY command"},
        {"double_bounce_sender", PARAM_STRING, "double-bounce", 0, 0,
         "sender of bounces that must not bounce again"},
        {"duplicate_filter_limit", PARAM_INT, "1000", 0, 0, "recipients remembered to drop duplicates"},
        {"empty_address_recipient", PARAM_STRING, "MAILER-DAEMON", 0, 0,
         "recipient of mail sent to the null address"},
        {"enable_long_queue_ids", PARAM_BOOL, "no", 0, PARAM_F_INERT,
         "use long, non-repeating queue file names"},
        {"error_notice_recipient", PARAM_STRING, "postmaster", 0, 0,
         "who receives notices about software errors"},
        {"export_environment", PARAM_LIST, "TZ MAIL_CONFIG LANG", 0, 0,
         "environment passed to external commands"},
        {"fallback_transport", PARAM_STRING, "", 0, PARAM_F_INERT,
         "transport for recipients local delivery does not know"},
        {"fork_attempts", PARAM_INT, "5", 0, 0, "attempts to fork a process before giving up"},
        {"fork_delay", PARAM_TIME, "1s", 's', 0, "pause between fork attempts"},
        {"forward_path", PARAM_LIST, "$home/.forward${recipient_delimiter}${extension}, $home/.forward", 0,
         0, "where local delivery looks for .forward files"},
        {"hash_queue_depth", PARAM_INT, "1", 0, 0, "subdirectory levels of hashed queues"},
        {"hash_queue_names", PARAM_LIST, "deferred, defer", 0, 0,
         "queues that are split into hashed subdirectories"},
        {"header_checks", PARAM_LIST, "", 0, PARAM_F_TABLES, "header content checks of the cleanup service"},
        {"header_size_limit", PARAM_SIZE, "102400", 0, 0, "maximum size of one message header"},
        {"home_mailbox", PARAM_STRING, "", 0, 0,
         "mailbox path relative to the home directory (mailbox/ for Maildir)"},
        {"hopcount_limit", PARAM_INT, "50", 0, 0, "Received: headers after which a message is a mail loop"},
        {"html_directory", PARAM_STRING, "no", 0, 0, "where the HTML documentation is installed"},
        {"import_environment", PARAM_LIST,
         "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME",
         0, 0, "environment a daemon keeps from its parent"},
        {"in_flow_delay", PARAM_TIME, "1s", 's', 0,
         "pause before accepting a message while mail arrives faster than it leaves"},
        {"inet_interfaces", PARAM_LIST, "all", 0, 0,
         "addresses the SMTP server listens on (all, loopback-only, localhost or addresses)"},
        {"inet_protocols", PARAM_LIST, "all", 0, 0, "IP versions to use: ipv4, ipv6, all"},
        {"initial_destination_concurrency", PARAM_INT, "5", 0, 0,
         "initial parallel deliveries per destination"},
        {"internal_mail_filter_classes", PARAM_LIST, "", 0, 0,
         "mail postd makes itself that content checks inspect: bounce (notifications)"},
        {"invalid_hostname_reject_code", PARAM_INT, "501", 0, 0,
         "SMTP reply code for reject_invalid_helo_hostname"},
        {"ipc_idle", PARAM_TIME, "5s", 's', 0, "idle time after which an internal client disconnects"},
        {"ipc_timeout", PARAM_TIME, "3600s", 's', 0, "time limit for one internal request"},
        {"line_length_limit", PARAM_INT, "2048", 0, 0, "longest line kept in one piece in a message"},
        {"lmtp_bind_address", PARAM_STRING, "", 0, 0, "source IPv4 address of the LMTP client"},
        {"lmtp_connect_timeout", PARAM_TIME, "0s", 's', 0,
         "LMTP connection time limit (0: the system's own limit)"},
        {"lmtp_lhlo_name", PARAM_STRING, "$myhostname", 0, 0, "host name the LMTP client sends in LHLO"},
        {"lmtp_lhlo_timeout", PARAM_TIME, "300s", 's', 0,
         "time limit for the LMTP server's greeting and its reply to LHLO"},
        {"lmtp_tls_security_level", PARAM_STRING, "", 0, 0, "TLS level of the LMTP client"},
        {"local_command_shell", PARAM_STRING, "", 0, 0, "shell for deliveries to commands"},
        {"local_destination_concurrency_limit", PARAM_INT, "2", 0, 0,
         "parallel local deliveries per recipient"},
        {"local_destination_recipient_limit", PARAM_INT, "1", 0, 0, "recipients per local delivery"},
        {"local_header_rewrite_clients", PARAM_LIST, "permit_inet_interfaces", 0, PARAM_F_TABLES,
         "clients whose message headers are rewritten"},
        {"local_recipient_maps", PARAM_LIST, "proxy:unix:passwd.byname $alias_maps", 0, PARAM_F_TABLES,
         "tables of valid local recipients"},
        {"local_transport", PARAM_STRING, "local:$myhostname", 0, 0, "transport for local destinations"},
        {"luser_relay", PARAM_STRING, "", 0, 0, "destination for unknown local recipients"},
        {"mail_name", PARAM_STRING, "Postfix", 0, 0, "mail system name in the SMTP greeting and bounces"},
        {"mail_owner", PARAM_STRING, POSTD_MAIL_OWNER, 0, 0,
         "account that owns the queue and runs the daemons"},
        {"mail_spool_directory", PARAM_STRING, "/var/mail", 0, 0, "directory of UNIX-style mailboxes"},
        {"mail_version", PARAM_STRING, POSTD_VERSION, 0, PARAM_F_READONLY, "version of the mail system"},
        {"mailbox_command", PARAM_STRING, "", 0, 0, "command that delivers to the mailbox"},
        {"mailbox_delivery_lock", PARAM_LIST, "fcntl, dotlock", 0, 0, "locks used for mailbox delivery"},
        {"mailbox_size_limit", PARAM_SIZE, "51200000", 0, 0, "maximum size of a mailbox or maildir file"},
        {"mailbox_transport", PARAM_STRING, "", 0, 0,
         "transport[:nexthop] for local recipients that have no alias (e.g. "
         "lmtp:unix:private/dovecot-lmtp)"},
        {"maillog_file", PARAM_STRING, "", 0, 0, "log file when not logging to the journal or syslog"},
        {"mailq_path", PARAM_STRING, "/usr/bin/mailq", 0, 0, "path of the mailq command"},
        {"manpage_directory", PARAM_STRING, "/usr/share/man", 0, 0, "where the manual pages are installed"},
        {"maps_rbl_reject_code", PARAM_INT, "554", 0, 0, "reply code of reject_rbl_client"},
        {"masquerade_domains", PARAM_LIST, "", 0, PARAM_F_INERT,
         "domains whose subdomains are hidden in addresses"},
        {"master_service_disable", PARAM_LIST, "", 0, 0,
         "master.cf services that are not started (name/type, or a type such as inet)"},
        {"max_idle", PARAM_TIME, "100s", 's', 0, "idle time after which a daemon exits"},
        {"max_use", PARAM_INT, "100", 0, 0, "requests a daemon handles before it exits"},
        {"maximal_backoff_time", PARAM_TIME, "4000s", 's', 0, "longest retry interval of deferred mail"},
        {"maximal_queue_lifetime", PARAM_TIME, "5d", 'd', 0, "how long mail stays queued before it bounces"},
        {"message_reject_characters", PARAM_STRING, "", 0, PARAM_F_INERT,
         "characters that cause a message to be rejected"},
        {"message_size_limit", PARAM_SIZE, "10240000", 0, 0, "maximum size of a message, envelope included"},
        {"meta_directory", PARAM_STRING, POSTD_CONFIG_DIR, 0, 0, "directory of read-only shared files"},
        {"milter_command_timeout", PARAM_TIME, "30s", 's', 0,
         "time limit for sending a command to a milter and reading its answer"},
        {"milter_connect_macros", PARAM_STRING, "j {daemon_name} {daemon_addr} v _", 0, 0,
         "macros sent to milters with the connect command"},
        {"milter_connect_timeout", PARAM_TIME, "30s", 's', 0, "time limit for connecting to a milter"},
        {"milter_content_timeout", PARAM_TIME, "300s", 's', 0,
         "time limit for sending message content to a milter and reading its answer"},
        {"milter_data_macros", PARAM_STRING, "i", 0, 0, "macros sent to milters with the DATA command"},
        {"milter_default_action", PARAM_STRING, "tempfail", 0, 0,
         "what to do when a milter is unavailable: accept, reject, tempfail or quarantine"},
        {"milter_end_of_data_macros", PARAM_STRING, "i", 0, 0,
         "macros sent to milters at the end of the message"},
        {"milter_end_of_header_macros", PARAM_STRING, "i", 0, 0,
         "macros sent to milters at the end of the headers"},
        {"milter_helo_macros", PARAM_STRING,
         "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}", 0, 0,
         "macros sent to milters with the HELO command"},
        {"milter_macro_daemon_name", PARAM_STRING, "$myhostname", 0, 0,
         "the {daemon_name} macro milters see"},
        {"milter_macro_v", PARAM_STRING, "$mail_name $mail_version", 0, 0, "the v macro milters see"},
        {"milter_mail_macros", PARAM_STRING,
         "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}", 0, 0,
         "macros sent to milters with the MAIL FROM command"},
        {"milter_protocol", PARAM_INT, "6", 0, 0, "the milter protocol version offered (2 to 6)"},
        {"milter_rcpt_macros", PARAM_STRING, "i {rcpt_addr} {rcpt_host} {rcpt_mailer}", 0, 0,
         "macros sent to milters with the RCPT TO command"},
        {"mime_header_checks", PARAM_LIST, "$header_checks", 0, PARAM_F_TABLES,
         "content checks of the MIME headers of message body parts"},
        {"minimal_backoff_time", PARAM_TIME, "300s", 's', 0, "shortest retry interval of deferred mail"},
        {"multi_instance_directories", PARAM_LIST, "", 0, 0,
         "configuration directories of the secondary instances"},
        {"multi_instance_enable", PARAM_BOOL, "no", 0, 0, "start this instance with the others"},
        {"multi_instance_group", PARAM_STRING, "", 0, 0, "group name of this instance"},
        {"multi_instance_name", PARAM_STRING, "", 0, 0, "name of this instance (postfix-NAME)"},
        {"multi_instance_wrapper", PARAM_STRING, "", 0, 0,
         "command that start/stop/reload use to act on all instances"},
        {"mydestination", PARAM_LIST, "$myhostname, localhost.$mydomain, localhost", 0, PARAM_F_TABLES,
         "domains delivered locally"},
        {"mydomain", PARAM_STRING, "localdomain", 0, PARAM_F_DYNAMIC, "internet domain of this host"},
        {"myhostname", PARAM_STRING, "localhost.localdomain", 0, PARAM_F_DYNAMIC,
         "fully-qualified host name of this host"},
        {"mynetworks", PARAM_LIST, "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128", 0, PARAM_F_TABLES,
         "trusted clients that may relay"},
        {"mynetworks_style", PARAM_STRING, "host", 0, 0,
         "how mynetworks is derived when unset: host, subnet or class"},
        {"myorigin", PARAM_STRING, "$myhostname", 0, 0, "domain appended to locally posted mail"},
        {"nested_header_checks", PARAM_LIST, "$header_checks", 0, PARAM_F_TABLES,
         "content checks of the headers of attached messages"},
        {"newaliases_path", PARAM_STRING, "/usr/bin/newaliases", 0, 0, "path of the newaliases command"},
        {"non_fqdn_reject_code", PARAM_INT, "504", 0, 0,
         "SMTP reply code for the reject_non_fqdn_* restrictions"},
        {"non_smtpd_milters", PARAM_LIST, "", 0, 0, "milters for mail that does not arrive by SMTP"},
        {"notify_classes", PARAM_LIST, "resource, software", 0, 0,
         "problem classes reported to the postmaster"},
        {"owner_request_special", PARAM_BOOL, "yes", 0, 0, "treat owner- and -request addresses specially"},
        /* postd's own (Postfix has no per-session limit): smtpd_timeout restarts with every byte, so
         * only this ends a client that drips input forever. */
        {"postd_smtpd_session_deadline", PARAM_TIME, "3600s", 's', 0,
         "postd only: wall-clock limit of one SMTP session whatever the client sends; then 421 4.4.2 "
         "and disconnect (0: no limit)"},
        {"process_id_directory", PARAM_STRING, "pid", 0, 0, "directory of pid files, relative to the queue"},
        {"propagate_unmatched_extensions", PARAM_LIST, "canonical, virtual", 0, 0,
         "where address extensions survive rewriting"},
        {"proxy_interfaces", PARAM_LIST, "", 0, 0, "addresses of a proxy or NAT in front of this host"},
        {"qmgr_message_active_limit", PARAM_INT, "20000", 0, 0, "messages in the active queue at once"},
        {"queue_directory", PARAM_STRING, POSTD_QUEUE_DIR, 0, 0, "directory of the mail queue"},
        {"queue_minfree", PARAM_SIZE, "0", 0, 0,
         "free space the queue file system must keep (at least 1.5 x message_size_limit)"},
        {"queue_run_delay", PARAM_TIME, "300s", 's', 0, "interval between deferred queue scans"},
        {"readme_directory", PARAM_STRING, "no", 0, 0, "where the README files are installed"},
        {"receive_override_options", PARAM_LIST, "", 0, 0,
         "what a re-injection service skips: no_unknown_recipient_checks, no_address_mappings, "
         "no_header_body_checks, no_milters"},
        {"recipient_canonical_classes", PARAM_LIST, "envelope_recipient, header_recipient", 0, 0,
         "addresses recipient_canonical_maps applies to"},
        {"recipient_canonical_maps", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "address mapping for recipient addresses"},
        {"recipient_delimiter", PARAM_STRING, "", 0, 0, "separator between user name and address extension"},
        {"reject_code", PARAM_INT, "554", 0, 0, "SMTP reply code for a reject restriction"},
        {"relay_domains", PARAM_LIST, "", 0, PARAM_F_TABLES, "domains this host relays mail to"},
        {"relay_domains_reject_code", PARAM_INT, "554", 0, 0, "SMTP reply code for relay access denied"},
        {"relay_recipient_maps", PARAM_LIST, "", 0, PARAM_F_TABLES | PARAM_F_INERT,
         "valid recipients in relay_domains"},
        {"relay_transport", PARAM_STRING, "relay", 0, 0, "transport for relay_domains"},
        {"relayhost", PARAM_STRING, "", 0, 0,
         "next-hop host for non-local mail ([host] skips the MX lookup)"},
        {"remote_header_rewrite_domain", PARAM_STRING, "", 0, PARAM_F_INERT,
         "domain appended to incomplete header addresses of remote mail"},
        {"resolve_dequoted_address", PARAM_BOOL, "yes", 0, 0, "resolve addresses after removing quotes"},
        {"sample_directory", PARAM_STRING, POSTD_CONFIG_DIR, 0, 0,
         "where sample configuration files are installed"},
        {"sender_canonical_classes", PARAM_LIST, "envelope_sender, header_sender", 0, 0,
         "addresses sender_canonical_maps applies to"},
        {"sender_canonical_maps", PARAM_LIST, "", 0, PARAM_F_TABLES, "address mapping for sender addresses"},
        {"sender_dependent_relayhost_maps", PARAM_LIST, "", 0, PARAM_F_TABLES | PARAM_F_INERT,
         "relay host per sender"},
        {"sendmail_path", PARAM_STRING, "/usr/sbin/sendmail", 0, 0, "path of the sendmail command"},
        {"service_throttle_time", PARAM_TIME, "60s", 's', 0, "pause after a service fails to start"},
        {"setgid_group", PARAM_STRING, POSTD_SETGID_GROUP, 0, 0,
         "group of postdrop and the maildrop directory"},
        {"shlib_directory", PARAM_STRING, POSTD_SHLIB_DIR, 0, 0,
         "where shared libraries and plugins are installed"},
        {"smtp_address_preference", PARAM_STRING, "any", 0, PARAM_F_INERT,
         "preferred IP version of the SMTP client"},
        {"smtp_bind_address", PARAM_STRING, "", 0, 0, "source IPv4 address of the SMTP client"},
        {"smtp_bind_address6", PARAM_STRING, "", 0, 0, "source IPv6 address of the SMTP client"},
        {"smtp_connect_timeout", PARAM_TIME, "30s", 's', 0, "SMTP client connection time limit"},
        {"smtp_connection_cache_on_demand", PARAM_BOOL, "yes", 0, 0,
         "keep connections to destinations with a backlog"},
        {"smtp_connection_cache_time_limit", PARAM_TIME, "2s", 's', 0,
         "how long a cached connection stays idle"},
        {"smtp_data_done_timeout", PARAM_TIME, "600s", 's', 0,
         "time limit for the reply to the end of DATA"},
        {"smtp_data_init_timeout", PARAM_TIME, "120s", 's', 0, "time limit for the reply to DATA"},
        {"smtp_data_xfer_timeout", PARAM_TIME, "180s", 's', 0, "time limit for sending message content"},
        {"smtp_destination_concurrency_limit", PARAM_INT, "$default_destination_concurrency_limit", 0, 0,
         "parallel SMTP deliveries per destination"},
        {"smtp_destination_recipient_limit", PARAM_INT, "$default_destination_recipient_limit", 0, 0,
         "recipients per SMTP delivery"},
        {"smtp_dns_support_level", PARAM_STRING, "", 0, 0,
         "DNS use of the SMTP client: disabled (no MX lookups; getaddrinfo), enabled, dnssec (the AD bit "
         "of a local validating resolver, for DANE); empty: disable_dns_lookups decides"},
        {"smtp_fallback_relay", PARAM_LIST, "", 0, 0, "hosts tried when the relayhost or the MX hosts fail"},
        {"smtp_generic_maps", PARAM_LIST, "", 0, PARAM_F_TABLES | PARAM_F_INERT,
         "address mapping for outbound SMTP"},
        {"smtp_helo_name", PARAM_STRING, "$myhostname", 0, 0,
         "host name the SMTP client sends in HELO/EHLO"},
        {"smtp_helo_timeout", PARAM_TIME, "300s", 's', 0,
         "time limit for the greeting and the HELO/EHLO reply"},
        {"smtp_host_lookup", PARAM_LIST, "dns", 0, 0,
         "how the SMTP client finds hosts: dns (MX, then addresses), native (getaddrinfo only), or both"},
        {"smtp_mail_timeout", PARAM_TIME, "300s", 's', 0, "time limit for the reply to MAIL FROM"},
        {"smtp_mx_address_limit", PARAM_INT, "5", 0, 0, "addresses tried per delivery"},
        {"smtp_mx_session_limit", PARAM_INT, "2", 0, 0, "sessions tried per delivery"},
        {"smtp_quit_timeout", PARAM_TIME, "300s", 's', 0, "time limit for the reply to QUIT"},
        {"smtp_rcpt_timeout", PARAM_TIME, "300s", 's', 0, "time limit for the reply to RCPT TO"},
        {"smtp_sasl_auth_enable", PARAM_BOOL, "no", 0, 0, "authenticate to the remote server with SASL"},
        {"smtp_sasl_mechanism_filter", PARAM_LIST, "", 0, PARAM_F_TABLES | PARAM_F_INERT,
         "SASL mechanisms the SMTP client may use"},
        {"smtp_sasl_password_maps", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "user name and password per remote host"},
        {"smtp_sasl_security_options", PARAM_LIST, "noplaintext, noanonymous", 0, 0,
         "SASL restrictions of the SMTP client"},
        {"smtp_sasl_tls_security_options", PARAM_LIST, "$smtp_sasl_security_options", 0, 0,
         "SASL restrictions of the SMTP client inside TLS"},
        {"smtp_skip_5xx_greeting", PARAM_BOOL, "yes", 0, 0, "try the next host after a 5xx greeting"},
        {"smtp_tls_CAfile", PARAM_STRING, "", 0, 0, "trusted CA certificates of the SMTP client (file)"},
        {"smtp_tls_CApath", PARAM_STRING, "", 0, 0,
         "trusted CA certificates of the SMTP client (directory)"},
        {"smtp_tls_cert_file", PARAM_STRING, "", 0, 0, "client certificate of the SMTP client"},
        {"smtp_tls_ciphers", PARAM_STRING, "medium", 0, 0,
         "cipher grade of opportunistic TLS in the SMTP client"},
        {"smtp_tls_dane_insecure_mx_policy", PARAM_STRING, "", 0, 0,
         "TLS level dane for an MX host from an unsigned MX answer: may, dane (use its TLSA records) or "
         "encrypt; empty: dane when smtp_tls_security_level is dane, else may"},
        {"smtp_tls_exclude_ciphers", PARAM_LIST, "", 0, 0,
         "ciphers or cipher types the SMTP client never uses with TLS 1.2 and below"},
        {"smtp_tls_fingerprint_cert_match", PARAM_LIST, "", 0, 0,
         "fingerprints of the server certificate or public key at the fingerprint level"},
        {"smtp_tls_fingerprint_digest", PARAM_STRING, "sha256", 0, 0,
         "digest of the fingerprint level (an OpenSSL digest name)"},
        {"smtp_tls_key_file", PARAM_STRING, "$smtp_tls_cert_file", 0, 0,
         "private key of the SMTP client certificate"},
        {"smtp_tls_loglevel", PARAM_INT, "0", 0, 0, "TLS logging of the SMTP client"},
        {"smtp_tls_mandatory_ciphers", PARAM_STRING, "medium", 0, 0,
         "cipher grade of mandatory TLS (encrypt, verify, secure) in the SMTP client"},
        {"smtp_tls_mandatory_protocols", PARAM_LIST, ">=TLSv1", 0, 0,
         "TLS protocols of mandatory TLS in the SMTP client"},
        {"smtp_tls_policy_maps", PARAM_LIST, "", 0, PARAM_F_TABLES, "TLS policy per destination"},
        {"smtp_tls_protocols", PARAM_LIST, ">=TLSv1", 0, 0,
         "TLS protocols of opportunistic TLS in the SMTP client"},
        {"smtp_tls_secure_cert_match", PARAM_LIST, "nexthop, dot-nexthop", 0, 0,
         "names a server certificate must show at the secure level"},
        {"smtp_tls_security_level", PARAM_STRING, "", 0, 0,
         "TLS level of the SMTP client: none, may, encrypt, dane, dane-only, fingerprint, verify, secure"},
        {"smtp_tls_session_cache_database", PARAM_STRING, "", 0, PARAM_F_TABLES | PARAM_F_CREATED,
         "TLS session cache of the SMTP client (postd: kept in each smtp process's memory, see "
         "docs/TLS.md)"},
        {"smtp_tls_session_cache_timeout", PARAM_TIME, "3600s", 's', 0,
         "lifetime of cached TLS sessions of the SMTP client"},
        {"smtp_tls_verify_cert_match", PARAM_LIST, "hostname", 0, 0,
         "names a server certificate must show at the verify level"},
        {"smtp_xforward_timeout", PARAM_TIME, "300s", 's', 0, "time limit for the reply to XFORWARD"},
        {"smtpd_authorized_xforward_hosts", PARAM_LIST, "", 0, PARAM_F_TABLES | PARAM_F_INERT,
         "clients allowed to use XFORWARD"},
        {"smtpd_banner", PARAM_STRING, "$myhostname ESMTP $mail_name", 0, 0,
         "text after the 220 code of the greeting"},
        {"smtpd_client_auth_rate_limit", PARAM_INT, "0", 0, 0,
         "AUTH commands per client and service per anvil_rate_time_unit (0: no limit)"},
        {"smtpd_client_connection_count_limit", PARAM_INT, "50", 0, 0,
         "simultaneous connections per client and service over all smtpd processes (0: no limit)"},
        {"smtpd_client_connection_rate_limit", PARAM_INT, "0", 0, 0,
         "connections per client and service per anvil_rate_time_unit (0: no limit)"},
        /* Postfix's default. The old name smtpd_client_connection_limit_exceptions is not in the table, so
         * this is $mynetworks; a main.cf that sets the old name gets an empty list (${a:b} is b only
         * while $a is empty), as with Postfix. */
        {"smtpd_client_event_limit_exceptions", PARAM_LIST,
         "${smtpd_client_connection_limit_exceptions:$mynetworks}", 0, PARAM_F_TABLES,
         "clients exempt from every smtpd_client_*_limit (addresses, networks, tables)"},
        {"smtpd_client_message_rate_limit", PARAM_INT, "0", 0, 0,
         "MAIL FROM commands per client and service per anvil_rate_time_unit (0: no limit)"},
        {"smtpd_client_port_logging", PARAM_BOOL, "no", 0, 0, "log the client port"},
        {"smtpd_client_recipient_rate_limit", PARAM_INT, "0", 0, 0,
         "RCPT TO commands per client and service per anvil_rate_time_unit (0: no limit)"},
        {"smtpd_client_restrictions", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "access restrictions at connect time"},
        {"smtpd_data_restrictions", PARAM_LIST, "", 0, PARAM_F_TABLES, "access restrictions at DATA"},
        {"smtpd_delay_reject", PARAM_BOOL, "yes", 0, 0,
         "apply client, HELO and sender restrictions at RCPT TO"},
        {"smtpd_end_of_data_restrictions", PARAM_LIST, "", 0, PARAM_F_TABLES | PARAM_F_INERT,
         "access restrictions at the end of DATA"},
        {"smtpd_enforce_tls", PARAM_BOOL, "no", 0, 0, "old form of smtpd_tls_security_level = encrypt"},
        {"smtpd_error_sleep_time", PARAM_TIME, "1s", 's', 0,
         "pause before each error reply once the client made smtpd_soft_error_limit errors"},
        {"smtpd_etrn_restrictions", PARAM_LIST, "", 0, PARAM_F_TABLES | PARAM_F_INERT,
         "access restrictions for ETRN"},
        {"smtpd_forbid_bare_newline", PARAM_STRING, "normalize", 0, 0,
         "bare LF in SMTP input: normalize, yes or no (a bare LF ends a command or content line as CRLF "
         "would; only CRLF.CRLF ends DATA), or reject (reply 521 and disconnect)"},
        {"smtpd_forbid_bare_newline_exclusions", PARAM_LIST, "$mynetworks", 0, PARAM_F_TABLES,
         "clients exempt from smtpd_forbid_bare_newline = reject: their bare LF is normalized instead"},
        {"smtpd_forbid_unauth_pipelining", PARAM_BOOL, "yes", 0, 0,
         "disconnect clients that pipeline before EHLO"},
        {"smtpd_hard_error_limit", PARAM_INT, "20", 0, 0, "errors before the server disconnects"},
        {"smtpd_helo_required", PARAM_BOOL, "no", 0, 0, "require HELO or EHLO before MAIL FROM"},
        {"smtpd_helo_restrictions", PARAM_LIST, "", 0, PARAM_F_TABLES, "access restrictions for HELO/EHLO"},
        {"smtpd_history_flush_threshold", PARAM_INT, "100", 0, 0, "commands kept for the postmaster notice"},
        {"smtpd_junk_command_limit", PARAM_INT, "100", 0, 0,
         "NOOP, VRFY, ETRN, RSET, HELO and EHLO commands before each further one counts as an error "
         "(the count starts again after a delivered message)"},
        {"smtpd_milters", PARAM_LIST, "", 0, 0, "milters for mail received by SMTP"},
        {"smtpd_null_access_lookup_key", PARAM_STRING, "<>", 0, 0,
         "access table key for the null sender address"},
        {"smtpd_peername_lookup", PARAM_BOOL, "yes", 0, 0,
         "look up the client host name (PTR, then forward-confirmed) before the greeting"},
        {"smtpd_proxy_ehlo", PARAM_STRING, "$myhostname", 0, 0,
         "host name smtpd sends in its EHLO to the before-queue filter"},
        {"smtpd_proxy_filter", PARAM_STRING, "", 0, 0,
         "before-queue content filter (host:port, inet:host:port or unix:path) that receives each mail "
         "transaction instead of cleanup"},
        {"smtpd_proxy_options", PARAM_LIST, "", 0, 0,
         "smtpd_proxy_filter options (speed_adjust: receive the whole message before connecting)"},
        {"smtpd_proxy_timeout", PARAM_TIME, "100s", 's', 0,
         "time limit to connect to the before-queue filter and for each of its replies"},
        {"smtpd_recipient_limit", PARAM_INT, "1000", 0, 0, "recipients per message"},
        {"smtpd_recipient_restrictions", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "access restrictions at RCPT TO (after smtpd_relay_restrictions)"},
        {"smtpd_reject_unlisted_recipient", PARAM_BOOL, "yes", 0, 0,
         "reject unknown recipients in local and virtual domains"},
        {"smtpd_reject_unlisted_sender", PARAM_BOOL, "no", 0, 0, "reject unknown senders in our domains"},
        {"smtpd_relay_restrictions", PARAM_LIST,
         "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination", 0, PARAM_F_TABLES,
         "relay control at RCPT TO"},
        {"smtpd_restriction_classes", PARAM_LIST, "", 0, 0,
         "names of user-defined restriction lists (each one a main.cf parameter)"},
        {"smtpd_sasl_auth_enable", PARAM_BOOL, "no", 0, 0, "offer SASL authentication (AUTH)"},
        {"smtpd_sasl_authenticated_header", PARAM_BOOL, "no", 0, 0,
         "show the SASL user name in the Received header"},
        /* Dovecot picks the realm itself (auth_default_realm in Dovecot's configuration). */
        {"smtpd_sasl_local_domain", PARAM_STRING, "", 0, PARAM_F_INERT,
         "realm of SASL users (with Dovecot: set auth_default_realm there)"},
        {"smtpd_sasl_path", PARAM_STRING, "smtpd", 0, 0, "SASL configuration name or socket path"},
        {"smtpd_sasl_security_options", PARAM_LIST, "noanonymous", 0, 0,
         "SASL mechanism restrictions of the server"},
        {"smtpd_sasl_tls_security_options", PARAM_LIST, "$smtpd_sasl_security_options", 0, 0,
         "SASL mechanism restrictions of the server inside TLS"},
        {"smtpd_sasl_type", PARAM_STRING, "cyrus", 0, 0, "SASL implementation: cyrus or dovecot"},
        {"smtpd_sender_login_maps", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "owners of sender addresses for authenticated clients"},
        {"smtpd_sender_restrictions", PARAM_LIST, "", 0, PARAM_F_TABLES, "access restrictions at MAIL FROM"},
        {"smtpd_soft_error_limit", PARAM_INT, "10", 0, 0, "errors before replies are delayed"},
        {"smtpd_timeout", PARAM_TIME, "300s", 's', 0, "time limit for a client command or data"},
        {"smtpd_tls_CAfile", PARAM_STRING, "", 0, 0,
         "CA certificates for client certificate verification (file)"},
        {"smtpd_tls_CApath", PARAM_STRING, "", 0, 0,
         "CA certificates for client certificate verification (directory)"},
        {"smtpd_tls_auth_only", PARAM_BOOL, "no", 0, 0, "offer AUTH only inside TLS"},
        {"smtpd_tls_cert_file", PARAM_STRING, "", 0, 0, "server certificate in PEM format"},
        {"smtpd_tls_ciphers", PARAM_STRING, "medium", 0, 0,
         "cipher grade of opportunistic TLS in the server"},
        {"smtpd_tls_exclude_ciphers", PARAM_LIST, "", 0, 0,
         "ciphers or cipher types the server never uses with TLS 1.2 and below"},
        {"smtpd_tls_key_file", PARAM_STRING, "$smtpd_tls_cert_file", 0, 0,
         "private key of the server certificate"},
        {"smtpd_tls_loglevel", PARAM_INT, "0", 0, 0, "TLS logging of the server"},
        {"smtpd_tls_mandatory_ciphers", PARAM_STRING, "medium", 0, 0,
         "cipher grade of mandatory TLS (encrypt, wrapper mode) in the server"},
        {"smtpd_tls_mandatory_protocols", PARAM_LIST, ">=TLSv1", 0, 0,
         "TLS protocols of mandatory TLS in the server"},
        {"smtpd_tls_protocols", PARAM_LIST, ">=TLSv1", 0, 0,
         "TLS protocols of opportunistic TLS in the server"},
        {"smtpd_tls_received_header", PARAM_BOOL, "no", 0, PARAM_F_INERT,
         "record the TLS protocol and cipher in the Received header"},
        {"smtpd_tls_security_level", PARAM_STRING, "", 0, 0, "TLS level of the server: none, may, encrypt"},
        {"smtpd_tls_session_cache_database", PARAM_STRING, "", 0, PARAM_F_TABLES | PARAM_F_CREATED,
         "TLS session cache of the server"},
        {"smtpd_tls_wrappermode", PARAM_BOOL, "no", 0, 0,
         "TLS from the first byte (port 465) instead of STARTTLS"},
        {"smtpd_use_tls", PARAM_BOOL, "no", 0, 0, "old form of smtpd_tls_security_level = may"},
        {"smtputf8_enable", PARAM_BOOL, "yes", 0, 0, "offer and accept SMTPUTF8 (RFC 6531)"},
        {"soft_bounce", PARAM_BOOL, "no", 0, 0, "turn permanent failures into temporary ones"},
        {"stress", PARAM_STRING, "", 0, 0, "set by the master when the service is under stress"},
        {"strict_mailbox_ownership", PARAM_BOOL, "yes", 0, 0, "refuse mailboxes not owned by the recipient"},
        {"strict_rfc821_envelopes", PARAM_BOOL, "no", 0, 0,
         "require <> around MAIL FROM and RCPT TO addresses"},
        {"swap_bangpath", PARAM_BOOL, "yes", 0, 0, "rewrite site!user into user@site"},
        {"syslog_facility", PARAM_STRING, "mail", 0, 0, "syslog facility of log lines"},
        {"syslog_name", PARAM_STRING, "${multi_instance_name?{$multi_instance_name}:{postfix}}", 0, 0,
         "log tag prefix (postfix, postfix-NAME)"},
        {"tls_high_cipherlist", PARAM_STRING, "aNULL:-aNULL:HIGH:@STRENGTH", 0, 0,
         "OpenSSL cipher list of the \"high\" grade"},
        {"tls_low_cipherlist", PARAM_STRING, "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH", 0, 0,
         "OpenSSL cipher list of the \"low\" grade (insecure: postd refuses that grade)"},
        {"tls_medium_cipherlist", PARAM_STRING, "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH", 0, 0,
         "OpenSSL cipher list of the \"medium\" grade"},
        {"tls_random_source", PARAM_STRING, "dev:/dev/urandom", 0, 0, "entropy source of the TLS library"},
        {"transport_maps", PARAM_LIST, "", 0, PARAM_F_TABLES, "transport and next hop per recipient domain"},
        {"transport_retry_time", PARAM_TIME, "60s", 's', 0, "retry interval of a failed transport"},
        {"trigger_timeout", PARAM_TIME, "10s", 's', 0, "time limit for a trigger to a service"},
        {"unknown_address_reject_code", PARAM_INT, "450", 0, 0,
         "reply code of reject_unknown_sender_domain and _recipient_domain"},
        {"unknown_client_reject_code", PARAM_INT, "450", 0, 0,
         "reply code of reject_unknown_client_hostname and _reverse_ when the name is surely unknown"},
        {"unknown_hostname_reject_code", PARAM_INT, "450", 0, 0,
         "reply code of reject_unknown_helo_hostname"},
        {"unknown_local_recipient_reject_code", PARAM_INT, "550", 0, 0,
         "SMTP reply code for unknown local recipients"},
        {"unknown_virtual_alias_reject_code", PARAM_INT, "550", 0, 0,
         "SMTP reply code for unknown recipients in virtual alias domains"},
        {"unknown_virtual_mailbox_reject_code", PARAM_INT, "550", 0, 0,
         "SMTP reply code for unknown recipients in virtual mailbox domains"},
        {"virtual_alias_address_length_limit", PARAM_INT, "1000", 0, 0,
         "longest address a virtual alias expansion may produce"},
        {"virtual_alias_domains", PARAM_LIST, "$virtual_alias_maps", 0, PARAM_F_TABLES,
         "domains whose addresses are all aliases"},
        {"virtual_alias_expansion_limit", PARAM_INT, "1000", 0, 0,
         "addresses one recipient may expand to through virtual_alias_maps"},
        {"virtual_alias_maps", PARAM_LIST, "$virtual_maps", 0, PARAM_F_TABLES,
         "address aliases for any domain"},
        {"virtual_alias_recursion_limit", PARAM_INT, "1000", 0, 0,
         "nesting of virtual_alias_maps expansions of one recipient"},
        {"virtual_gid_maps", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "group ID of each virtual mailbox recipient (static:N or a table)"},
        {"virtual_mailbox_base", PARAM_STRING, "", 0, 0, "base directory of virtual mailboxes"},
        {"virtual_mailbox_domains", PARAM_LIST, "$virtual_mailbox_maps", 0, PARAM_F_TABLES,
         "domains with virtual mailboxes"},
        {"virtual_mailbox_limit", PARAM_SIZE, "51200000", 0, 0,
         "largest mailbox or Maildir file the virtual agent writes"},
        {"virtual_mailbox_maps", PARAM_LIST, "", 0, PARAM_F_TABLES, "valid virtual mailbox recipients"},
        {"virtual_maps", PARAM_LIST, "", 0, PARAM_F_TABLES, "old name of virtual_alias_maps"},
        {"virtual_minimum_uid", PARAM_INT, "100", 0, 0,
         "smallest user ID the virtual delivery agent writes mailboxes as"},
        {"virtual_transport", PARAM_STRING, "virtual", 0, 0, "transport for virtual mailbox domains"},
        {"virtual_uid_maps", PARAM_LIST, "", 0, PARAM_F_TABLES,
         "user ID of each virtual mailbox recipient (static:N or a table)"},
};

/*
 * Parameters a master.cf service may carry under its own name, "<service>_<suffix>", and the
 * parameter that supplies their type and default.
 */
static const struct {
        const char *suffix;
        const char *base;
} service_suffixes[] = {
        {"delivery_slot_cost", "default_delivery_slot_cost"},
        {"delivery_slot_discount", "default_delivery_slot_discount"},
        {"delivery_slot_loan", "default_delivery_slot_loan"},
        {"destination_concurrency_failed_cohort_limit",
         "default_destination_concurrency_failed_cohort_limit"},
        {"destination_concurrency_limit", "default_destination_concurrency_limit"},
        {"destination_concurrency_negative_feedback", "default_destination_concurrency_negative_feedback"},
        {"destination_concurrency_positive_feedback", "default_destination_concurrency_positive_feedback"},
        {"destination_rate_delay", "default_destination_rate_delay"},
        {"destination_recipient_limit", "default_destination_recipient_limit"},
        {"extra_recipient_limit", "default_extra_recipient_limit"},
        {"initial_destination_concurrency", "initial_destination_concurrency"},
        {"minimum_delivery_slots", "default_minimum_delivery_slots"},
        {"recipient_limit", "default_recipient_limit"},
        {"recipient_refill_delay", "default_recipient_refill_delay"},
        {"recipient_refill_limit", "default_recipient_refill_limit"},
        {"time_limit", "command_time_limit"},
        {"transport_rate_delay", "default_transport_rate_delay"},
};

const struct param_def *param_table(size_t *ret_n)
{
        *ret_n = ELEMENTSOF(params);
        return params;
}

static int compare_name(const void *key, const void *elem)
{
        return strcmp(key, ((const struct param_def *)elem)->name);
}

const struct param_def *param_find(const char *name)
{
        return bsearch(name, params, ELEMENTSOF(params), sizeof params[0], compare_name);
}

const struct param_def *param_find_service(const char *name, size_t *ret_prefix_len)
{
        /* Try every split point: service names may themselves contain '_'. */
        for (const char *us = strchr(name, '_'); us; us = strchr(us + 1, '_')) {
                const char *suffix = us + 1;
                if (us == name || !*suffix)
                        continue;
                for (size_t i = 0; i < ELEMENTSOF(service_suffixes); i++)
                        if (streq(suffix, service_suffixes[i].suffix)) {
                                *ret_prefix_len = (size_t)(us - name);
                                return param_find(service_suffixes[i].base);
                        }
                if (strlen(suffix) < PARAM_NAME_MAX) {
                        char smtp_name[PARAM_NAME_MAX + 8];
                        snprintf(smtp_name, sizeof smtp_name, "smtp_%s", suffix);
                        const struct param_def *def = param_find(smtp_name);
                        if (def) {
                                *ret_prefix_len = (size_t)(us - name);
                                return def;
                        }
                }
        }
        return NULL;
}

const char *param_type_to_string(enum param_type t)
{
        switch (t) {
        case PARAM_STRING: return "string";
        case PARAM_LIST: return "list";
        case PARAM_BOOL: return "boolean";
        case PARAM_INT: return "integer";
        case PARAM_TIME: return "time";
        case PARAM_SIZE: return "size";
        }
        return "unknown";
}

bool param_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool param_valid_name(const char *name, size_t len)
{
        if (len == 0 || len > PARAM_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!param_name_char(name[i]))
                        return false;
        return true;
}

int param_parse_bool(const char *value, bool *ret)
{
        if (strcasecmp(value, "yes") == 0)
                *ret = true;
        else if (strcasecmp(value, "no") == 0)
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* Decimal digits with an optional sign, nothing else; *end gets the first byte after the number. */
static int parse_number(const char *value, bool allow_sign, long long *ret, const char **end)
{
        const char *p = value;
        bool negative = false;
        if (allow_sign && (*p == '-' || *p == '+'))
                negative = *p++ == '-';
        if (*p < '0' || *p > '9')
                return -EINVAL;
        long long n = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
                int digit = *p - '0';
                if (n > (LLONG_MAX - digit) / 10)
                        return -ERANGE;
                n = n * 10 + digit;
        }
        *ret = negative ? -n : n;
        *end = p;
        return 0;
}

int param_parse_int(const char *value, long long *ret)
{
        const char *end;
        long long n;
        int r = parse_number(value, true, &n, &end);
        if (r < 0)
                return r;
        if (*end)
                return -EINVAL;
        *ret = n;
        return 0;
}

int param_parse_size(const char *value, long long *ret)
{
        const char *end;
        long long n;
        int r = parse_number(value, false, &n, &end);
        if (r < 0)
                return r;
        if (*end)
                return -EINVAL;
        *ret = n;
        return 0;
}

static long long unit_seconds(char unit)
{
        switch (unit) {
        case 's': return 1;
        case 'm': return 60;
        case 'h': return 3600;
        case 'd': return 86400;
        case 'w': return 7 * 86400;
        default: return 0;
        }
}

int param_parse_time(const char *value, char unit, long long *ret)
{
        const char *end;
        long long n;
        int r = parse_number(value, false, &n, &end);
        if (r < 0)
                return r;
        if (*end) {
                if (end[1])
                        return -EINVAL;
                unit = *end;
        }
        long long mult = unit_seconds(unit ? unit : 's');
        if (mult == 0)
                return -EINVAL;
        if (n > LLONG_MAX / mult)
                return -ERANGE;
        *ret = n * mult;
        return 0;
}

char *param_check_value(const struct param_def *def, const char *value)
{
        long long n;
        bool b;

        switch (def->type) {
        case PARAM_STRING:
        case PARAM_LIST: return NULL;
        case PARAM_BOOL:
                if (param_parse_bool(value, &b) < 0)
                        return xasprintf("bad boolean value (use yes or no): %s = %s", def->name, value);
                return NULL;
        case PARAM_INT:
                if (param_parse_int(value, &n) < 0)
                        return xasprintf("bad numerical value: %s = %s", def->name, value);
                return NULL;
        case PARAM_SIZE:
                if (param_parse_size(value, &n) < 0)
                        return xasprintf("bad size value (bytes, without unit): %s = %s", def->name, value);
                return NULL;
        case PARAM_TIME:
                if (param_parse_time(value, def->unit, &n) < 0)
                        return xasprintf("bad time value (number with unit s, m, h, d or w): %s = %s",
                                         def->name, value);
                return NULL;
        }
        return NULL;
}
