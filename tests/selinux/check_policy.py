#!/usr/bin/python3
"""check_policy.py: offline checks of a compiled SELinux policy for postd's instances.

usage: check_policy.py POLICY FILE_CONTEXTS CASES INSTANCE

Reads the policy with setools (the library behind sesearch) and resolves paths against
FILE_CONTEXTS with libselinux (what restorecon would set). Path templates: @SPOOL@, @ETC@ and
@LIB@ stand for the default instance's directories and, with "-INSTANCE", the instance's.
Case lines (see cases.txt):
  label  PATH CLASS [TYPE]        instance label == default label (and == TYPE if given)
  new    DOMAIN PATH CLASS        what DOMAIN creates there gets the type file_contexts gives
  parity DOMAIN PATH CLASS PERMS  the instance grants DOMAIN every listed perm the default grants
  need   DOMAIN TARGET CLASS PERMS
         DOMAIN holds every perm on TARGET (a type, or a path: templates are checked for the
         default instance and the instance) because postd's code does it
  newattr DOMAIN PATH CLASS PERMS
         as need, on what DOMAIN has just created at PATH (the type the kernel gives it)
Prints PASS/FAIL per check and "N passed, N failed"; exits 1 on any failure.
"""
import os
import stat
import sys

import selinux
import setools

FILE_CLASSES = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "fifo_file": stat.S_IFIFO,
                "sock_file": stat.S_IFSOCK, "lnk_file": stat.S_IFLNK, "chr_file": stat.S_IFCHR}


class Policy:
    """The allow and type_transition rules of a policy, indexed once (one pass over all rules)."""

    def __init__(self, path):
        self.pol = setools.SELinuxPolicy(path)
        # setools' lookup_type scans every type: index names and aliases once instead.
        self.types, self.attrs = {}, {}
        for ty in self.pol.types():
            real = str(ty)
            self.attrs[real] = [real] + [str(a) for a in ty.attributes()]
            for name in [real] + [str(a) for a in ty.aliases()]:
                self.types[name] = real
        states = {str(b): b.state for b in self.pol.bools()}
        self.allow, self.trans, self.named = {}, {}, {}
        for r in self.pol.terules():
            try:
                cond = r.conditional
                if cond.evaluate(**{str(b): states[str(b)] for b in cond.booleans}) != r.conditional_block:
                    continue
            except setools.exception.RuleNotConditional:
                pass
            key = (str(r.source), str(r.target), str(r.tclass))
            if r.ruletype == setools.TERuletype.allow:
                self.allow.setdefault(key, set()).update(str(p) for p in r.perms)
            elif r.ruletype == setools.TERuletype.type_transition:
                name = getattr(r, "filename", None)
                if name is None:
                    self.trans[key] = str(r.default)
                else:
                    self.named[key + (str(name),)] = str(r.default)

    def canon(self, t):
        """A type's real name (RHEL: postfix_spool_maildrop_t is an alias of postfix_spool_t)."""
        return self.types.get(t, t)

    def names(self, t):
        """A type and every attribute it carries: rules may name either."""
        return self.attrs.get(self.canon(t), [t])

    def perms(self, domain, target, cls):
        got = set()
        targets = self.names(target) + (["self"] if self.canon(target) == self.canon(domain) else [])
        for s in self.names(domain):
            for t in targets:
                got |= self.allow.get((s, t, cls), set())
        return got

    def created_type(self, domain, parent, cls, name):
        """The kernel's choice: a named transition, else an unnamed one, else the parent's type."""
        for table, key in ((self.named, lambda s, t: (s, t, cls, name)), (self.trans, lambda s, t: (s, t, cls))):
            for s in self.names(domain):
                for t in self.names(parent):
                    if key(s, t) in table:
                        return self.canon(table[key(s, t)])
        return parent


def main():
    policy_path, fc_path, cases_path, inst = sys.argv[1:5]
    pol = Policy(policy_path)
    if selinux.matchpathcon_init(fc_path) != 0:
        sys.exit("cannot read %s" % fc_path)

    def label(path, cls):
        rc, ctx = selinux.matchpathcon(path, FILE_CLASSES.get(cls, 0))
        return pol.canon(ctx.split(":")[2]) if rc == 0 else "<none>"

    def expand(p, suffix):
        for k, v in (("@SPOOL@", "/var/spool/postfix"), ("@ETC@", "/etc/postfix"), ("@LIB@", "/var/lib/postfix")):
            p = p.replace(k, v + suffix)
        return p

    def granted(domain, path, cls, wanted):
        out = set()
        for p in wanted:
            if p == "create" and cls in FILE_CLASSES:
                tgt = pol.created_type(domain, label(os.path.dirname(path), "dir"), cls, os.path.basename(path))
            else:
                tgt = label(path, cls) if path.startswith("/") else path
            if p in pol.perms(domain, tgt, cls):
                out.add(p)
        return out

    npass = nfail = 0

    def report(ok, text):
        nonlocal npass, nfail
        npass, nfail = npass + ok, nfail + (not ok)
        print("%s %s" % ("PASS" if ok else "FAIL", text))

    inst_sfx = "-" + inst
    for raw in open(cases_path):
        f = raw.split("#", 1)[0].split()
        if not f:
            continue
        kind = f[0]
        if kind == "label":
            path, cls = f[1], f[2]
            ref, got = label(expand(path, ""), cls), label(expand(path, inst_sfx), cls)
            want = pol.canon(f[3]) if len(f) > 3 else ref
            report(got == ref == want,
                   "label %-44s %-9s instance %s, default %s, want %s" % (expand(path, inst_sfx), cls, got, ref, want))
        elif kind == "new":
            domain, path, cls = f[1], expand(f[2], inst_sfx), f[3]
            got = pol.created_type(domain, label(os.path.dirname(path), "dir"), cls, os.path.basename(path))
            want = label(path, cls)
            report(got == want, "new   %-18s %-38s %-9s kernel gives %s, file_contexts %s" % (domain, path, cls, got, want))
        elif kind == "parity":
            domain, path, cls, wanted = f[1], f[2], f[3], f[4].split(",")
            ref = granted(domain, expand(path, ""), cls, wanted)
            got = granted(domain, expand(path, inst_sfx), cls, ref)
            missing = ref - got
            report(bool(ref) and not missing,
                   "parity %-18s %-38s %-9s default {%s} instance lacks {%s}" % (
                       domain, expand(path, inst_sfx), cls, ",".join(sorted(ref)), ",".join(sorted(missing))))
        elif kind == "need":
            domain, target, cls, wanted = f[1], f[2], f[3], set(f[4].split(","))
            targets = [expand(target, ""), expand(target, inst_sfx)] if "@" in target else [target]
            for t in dict.fromkeys(targets):
                missing = wanted - granted(domain, t, cls, wanted)
                shown = "%s [%s]" % (t, label(t, cls)) if t.startswith("/") else t
                report(not missing, "need  %-18s %-46s %-18s lacks {%s}" % (
                    domain, shown, cls, ",".join(sorted(missing))))
        elif kind == "newattr":
            domain, path, cls, wanted = f[1], f[2], f[3], set(f[4].split(","))
            for p in dict.fromkeys([expand(path, ""), expand(path, inst_sfx)]):
                ty = pol.created_type(domain, label(os.path.dirname(p), "dir"), cls, os.path.basename(p))
                missing = wanted - pol.perms(domain, ty, cls)
                report(not missing, "newattr %-16s %-46s %-18s lacks {%s}" % (
                    domain, "%s [%s]" % (p, ty), cls, ",".join(sorted(missing))))
        else:
            sys.exit("%s: unknown case kind %r" % (cases_path, kind))
    print("%d passed, %d failed" % (npass, nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
