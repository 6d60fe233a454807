/* rewrite.h: cleanup's address canonicalisation (myorigin, mydomain), pure string functions. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Longest header value whose addresses are rewritten; longer ones are kept as they are. */
#define REWRITE_HEADER_VALUE_MAX (64u * 1024)
/* Nesting of (comments) followed in a header value; deeper ones stop the rewriting of that value. */
#define REWRITE_COMMENT_DEPTH_MAX 32u
/* Addresses rewritten in one header value; the rest are kept unchanged. */
#define REWRITE_HEADER_ADDRS_MAX 1024u

struct rewrite_opts {
        const char *myorigin;     /* appended as "@myorigin" to an address without a domain */
        const char *mydomain;     /* appended as ".mydomain" to a domain without a dot */
        bool append_at_myorigin;  /* append_at_myorigin */
        bool append_dot_mydomain; /* append_dot_mydomain */
};

/*
 * Canonicalise one address as Postfix's local rewriting does: "" stays "" (the null sender); a
 * source route "@a,@b:user@dom" becomes "user@dom"; "host!user" becomes "user@host"; trailing dots
 * of the domain go; "user" gets "@$myorigin" (append_at_myorigin); a domain without a dot gets
 * ".$mydomain" (append_dot_mydomain; never for [address literals]). Case is kept. Returns a malloc'd
 * string.
 */
char *rewrite_address(const struct rewrite_opts *o, const char *addr);

/*
 * Rewrite every address of an address-list header value (the text after "From:", "To:", "Cc:"),
 * changing only the address bytes: display names, comments, folding and spacing stay. Returns a
 * malloc'd new value, or NULL when nothing changed (or the value is too long or too odd to parse).
 */
char *rewrite_header_value(const struct rewrite_opts *o, const char *value, size_t len);
