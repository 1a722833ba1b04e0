/* SPDX-License-Identifier: MIT */
/*
 * The council definition loader (DESIGN 4): YAML or JSON text to a
 * validated council_def.  libfyaml's event parser feeds a small tree of our
 * own that keeps every node's 1-based line and column, then the schema walk
 * fills the def.  Every rejection fills the caller's council_diag with the
 * file, the position of the offending node and what was expected; nothing is
 * printed (libfyaml's diagnostics are collected, never written to stderr).
 * Input is bounded before parsing: size, bytes (UTF-8, no control
 * characters), nesting depth and node count.
 */
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "council/def.h"

#define MAX_TEXT (4u * 1024 * 1024) /* bytes, checked before parsing */
#define MAX_DEPTH 64                /* nested collections */
#define MAX_NODES 100000            /* a council needs a few hundred */
#define MAX_MEMBERS 26              /* ranking labels are A..Z */
#define MAX_NAME 64

enum ntype { N_SCALAR, N_MAP, N_SEQ };

/* A parsed node.  A mapping's kids alternate key, value. */
typedef struct node {
    enum ntype type;
    int line, col; /* 1-based */
    int plain;     /* scalar written without quotes */
    char *text;    /* scalar bytes, NUL-terminated (may hold a NUL) */
    size_t len;
    struct node **kids;
    size_t n, cap;
} node;

/* Loader state: where errors go. */
typedef struct ld {
    council_diag *diag;
    int failed;
} ld;

/* ------------------------------------------------------------------------
 * Diagnostics
 * ------------------------------------------------------------------------ */

/* Copy at most size-1 bytes of s, never ending inside a UTF-8 sequence. */
static void
copy_trunc(char *dst, size_t size, const char *s)
{
    size_t n = strlen(s);

    if (n >= size) {
        n = size - 1;
        /* Back off continuation bytes, then the lead byte they follow. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void
diag_init(council_diag *d, const char *file)
{
    memset(d, 0, sizeof(*d));
    copy_trunc(d->file, sizeof(d->file), file ? file : "<inline>");
}

/* Record the first error only: later ones are consequences. */
__attribute__((format(printf, 5, 0))) static council_err
failv(ld *l, council_err e, int line, int col, const char *fmt, va_list ap)
{
    char buf[sizeof(l->diag->msg) * 2];

    if (l->failed)
        return e;
    l->failed = 1;
    l->diag->line = line;
    l->diag->col = col;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    copy_trunc(l->diag->msg, sizeof(l->diag->msg), buf);
    return e;
}

__attribute__((format(printf, 5, 6))) static council_err
fail(ld *l, council_err e, int line, int col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    e = failv(l, e, line, col, fmt, ap);
    va_end(ap);
    return e;
}

__attribute__((format(printf, 3, 4))) static council_err
fail_at(ld *l, const node *n, const char *fmt, ...)
{
    va_list ap;
    council_err e;

    va_start(ap, fmt);
    e = failv(l, COUNCIL_EINVAL, n->line, n->col, fmt, ap);
    va_end(ap);
    return e;
}

/* User text for a message: at most 40 bytes, control bytes as '?', cut on
 * a character boundary, "..." when cut. */
static const char *
shown(char *buf, size_t size, const char *s, size_t len)
{
    size_t max = size - 4 < 40 ? size - 4 : 40, n = 0, i;

    for (i = 0; i < len && n < max; i++)
        buf[n++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7F) ? '?' : s[i];
    if (i < len) {
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ------------------------------------------------------------------------
 * Input checks and the tree
 * ------------------------------------------------------------------------ */

/*
 * YAML accepts printable Unicode only.  Checking bytes first gives binary
 * junk an exact position (libfyaml stops silently at a NUL byte) and keeps
 * invalid UTF-8 out of strings handed to providers.  Columns count
 * characters, as libfyaml's do.
 */
static council_err
check_bytes(ld *l, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    int line = 1, col = 1;

    while (i < len) {
        unsigned c = s[i];
        size_t k = 0;
        uint32_t cp = 0, min = 0;

        if (c == '\n') {
            line++;
            col = 1;
            i++;
            continue;
        }
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7F)
                return fail(l, COUNCIL_EPARSE, line, col,
                            "control character 0x%02x is not allowed "
                            "(expected YAML or JSON text)",
                            c);
            i++;
            col++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return fail(l, COUNCIL_EPARSE, line, col,
                        "invalid UTF-8 byte 0x%02x (expected YAML or JSON "
                        "text)",
                        c);
        }
        if (len - i <= k)
            return fail(l, COUNCIL_EPARSE, line, col,
                        "truncated UTF-8 sequence");
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return fail(l, COUNCIL_EPARSE, line, col,
                            "invalid UTF-8 sequence");
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ||
            (cp >= 0x80 && cp <= 0x9F && cp != 0x85))
            return fail(l, COUNCIL_EPARSE, line, col,
                        "invalid character U+%04X", (unsigned)cp);
        i += k + 1;
        col++;
    }
    return COUNCIL_OK;
}

/* Entries (commas and collections) in one outermost flow collection. */
#define MAX_FLOW_ITEMS 10000

/* The number of leading spaces of the line at text[i..], and whether the
 * line is empty (only spaces before its end). */
static size_t
line_indent(const char *text, size_t len, size_t i, int *empty)
{
    size_t k = i;

    while (k < len && text[k] == ' ')
        k++;
    *empty = k == len || text[k] == '\n' ||
             (text[k] == '\r' && (k + 1 == len || text[k + 1] == '\n'));
    return k - i;
}

/* A block scalar's header ('|' or '>' at i, then at most an indentation
 * digit and a chomping sign, blanks, a comment): 1 and *digit (0 when
 * none), else 0. */
static int
block_header(const char *text, size_t len, size_t i, int *digit)
{
    size_t k = i + 1;

    *digit = 0;
    while (k < len && k < i + 3 &&
           ((text[k] >= '1' && text[k] <= '9') || text[k] == '+' ||
            text[k] == '-')) {
        if (text[k] >= '1' && text[k] <= '9')
            *digit = text[k] - '0';
        k++;
    }
    if (k < len && text[k] != ' ' && text[k] != '\t' && text[k] != '\r' &&
        text[k] != '\n')
        return 0;
    while (k < len && (text[k] == ' ' || text[k] == '\t'))
        k++;
    return k == len || text[k] == '\n' || text[k] == '\r' || text[k] == '#';
}

/*
 * Two things are refused here, with their position, before libfyaml sees
 * the text:
 *
 * Explicit mapping keys.  libfyaml 0.7.12 crashes in fy_parser_destroy
 * after some parse errors in them ("? [a]:\t:" is enough; found by
 * fuzz_council_yaml, and upstream has open reports of the same kind).  A
 * council file never needs them.
 *
 * Deep or huge flow collections.  libfyaml's scanner holds every token of
 * a flow collection until the collection ends (it could be the key of a
 * mapping), so a 4 MB file of '[' took 1.45 GB and 2 s before the depth
 * check in build_tree saw its first event.  Here flow nesting deeper than
 * MAX_DEPTH, or more than MAX_FLOW_ITEMS entries in one flow collection,
 * is refused in constant memory; libfyaml then holds at most a few
 * thousand tokens.  (Block nesting is bounded by build_tree: libfyaml
 * hands its events out as it goes.)
 *
 * Method: a small scan that knows just enough YAML: comments ('#' after a
 * blank or at the start of a line), double-quoted (backslash escapes) and
 * single-quoted ('' escapes) scalars, which start only where a node
 * starts, and block scalars ('|' or '>' where a node starts in block
 * context), whose content lines are skipped.  Where a node starts: the
 * start of a line after indentation and "- " markers, or after '[', '{',
 * ',' or ': ' (in flow context after any ':', as in JSON's "a":1).
 *  - A '?' there, followed by a blank or the end of a line, is an explicit
 *    key.
 *  - A '[' or '{' there, or anywhere in flow context (a plain scalar there
 *    holds no flow indicator), opens a flow collection; in flow context a
 *    ']' or '}' closes one.
 *  - A block scalar's content is the lines indented more than the line's
 *    node (its key, or its "- " marker when the scalar is the entry), at
 *    the first such line's indentation (or the header's digit).  The scan
 *    takes no more lines as content than YAML does, so what it skips is
 *    never read by libfyaml as anything but text.
 */
static council_err
check_indicators(ld *l, const char *text, size_t len)
{
    enum { PLAIN, DQ, SQ, COMMENT, BLOCK } st = PLAIN;
    int line = 1, col = 1, node_start = 1, flow = 0, flow_line = 0;
    int flow_col = 0, digit = 0;
    /* On this line: the column (0-based) of its first key or value, and
     * of its last "- " marker before it; -1 when none yet. */
    long key_col = -1, dash_col = -1, base = 0, bs_indent = 0;
    size_t items = 0, i;

    for (i = 0; i < len; i++) {
        char c = text[i];
        char next = i + 1 < len ? text[i + 1] : '\n';

        if (((unsigned char)c & 0xC0) == 0x80)
            continue; /* a UTF-8 continuation byte: same column */
        if (c == '\n') {
            if (st == COMMENT)
                st = PLAIN;
            line++;
            col = 1;
            key_col = dash_col = -1;
            if (st == PLAIN)
                node_start = 1;
            if (st == BLOCK) {
                /* Skip the content lines that follow; stop before the
                 * first line that is not one. */
                for (;;) {
                    int empty;
                    size_t ind = line_indent(text, len, i + 1, &empty);
                    const char *nl;

                    if (!empty) {
                        if (bs_indent == 0 && (long)ind > base)
                            bs_indent = digit > 0 ? base + digit : (long)ind;
                        if (bs_indent == 0 || (long)ind < bs_indent)
                            break;
                    }
                    nl = memchr(text + i + 1, '\n', len - i - 1);
                    if (nl == NULL) {
                        i = len;
                        break;
                    }
                    i = (size_t)(nl - text);
                    line++;
                }
                st = PLAIN;
                node_start = 1;
            }
            continue;
        }
        switch (st) {
        case DQ:
            if (c == '\\' && i + 1 < len && text[i + 1] != '\n') {
                i++;
                col++;
            } else if (c == '"') {
                st = PLAIN;
            }
            break;
        case SQ:
            if (c == '\'' && next == '\'') {
                i++;
                col++;
            } else if (c == '\'') {
                st = PLAIN;
            }
            break;
        case COMMENT:
        case BLOCK: /* the rest of the header line */
            break;
        case PLAIN:
            if (c == '#' &&
                (col == 1 || text[i - 1] == ' ' || text[i - 1] == '\t')) {
                st = COMMENT;
            } else if (c == ' ' || c == '\t' || c == '\r') {
                /* blanks keep node_start as it is */
            } else if (c == '?' && node_start &&
                       (next == ' ' || next == '\t' || next == '\r' ||
                        next == '\n')) {
                return fail(l, COUNCIL_EPARSE, line, col,
                            "explicit mapping keys ('?') are not supported "
                            "in council files (expected key: value)");
            } else if ((c == '[' || c == '{') && (node_start || flow > 0)) {
                if (flow == 0) {
                    items = 0;
                    flow_line = line;
                    flow_col = col;
                }
                if (++flow > MAX_DEPTH)
                    return fail(l, COUNCIL_EINVAL, line, col,
                                "nested too deeply (more than %d levels)",
                                MAX_DEPTH);
                if (++items > MAX_FLOW_ITEMS)
                    goto too_many;
                node_start = 1;
            } else if ((c == ']' || c == '}') && flow > 0) {
                flow--;
                node_start = 0;
            } else if (c == ',' && flow > 0) {
                if (++items > MAX_FLOW_ITEMS)
                    goto too_many;
                node_start = 1;
            } else if ((c == '|' || c == '>') && node_start && flow == 0 &&
                       block_header(text, len, i, &digit)) {
                /* The node the scalar belongs to: the line's key, else
                 * its "- " entry, else (the header alone on its line)
                 * one column left of the header, which is never less
                 * than YAML's. */
                base = key_col >= 0    ? key_col
                       : dash_col >= 0 ? dash_col
                                       : (long)col - 2;
                bs_indent = 0;
                st = BLOCK;
            } else if (c == '"' && node_start) {
                st = DQ;
                node_start = 0;
            } else if (c == '\'' && node_start) {
                st = SQ;
                node_start = 0;
            } else if (c == '-' && flow == 0 && key_col < 0 &&
                       (next == ' ' || next == '\t' || next == '\r' ||
                        next == '\n')) {
                dash_col = col - 1;
                node_start = 1;
            } else if (c == ',' || (c == ':' && flow > 0) ||
                       ((c == ':' || c == '-') &&
                        (next == ' ' || next == '\t' || next == '\r' ||
                         next == '\n'))) {
                node_start = 1;
            } else {
                node_start = 0;
            }
            if (key_col < 0 && st == PLAIN && c != ' ' && c != '\t' &&
                c != '\r' && c != '-' && dash_col != col - 1)
                key_col = col - 1;
            else if (key_col < 0 && (st == DQ || st == SQ))
                key_col = col - 1;
            break;
        }
        col++;
    }
    return COUNCIL_OK;
too_many:
    return fail(l, COUNCIL_EINVAL, flow_line, flow_col,
                "too many values in one flow collection ([...] or "
                "{...}): more than %d; a council definition is small",
                MAX_FLOW_ITEMS);
}

static void
node_free(node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        node_free(n->kids[i]);
    council__free(n->kids);
    council__free(n->text);
    council__free(n);
}

static int
node_add(node *parent, node *kid)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        node **k = council__realloc(parent->kids, cap * sizeof(*k));

        if (k == NULL)
            return -1;
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

static void
no_output(struct fy_diag *d, void *user, const char *buf, size_t len)
{
    (void)d;
    (void)user;
    (void)buf;
    (void)len;
}

/* The first error libfyaml collected, into the diag. */
static council_err
parse_error(ld *l, struct fy_diag *fd, int line, int col)
{
    void *it = NULL;
    struct fy_diag_error *de;

    while ((de = fy_diag_errors_iterate(fd, &it)) != NULL) {
        if (de->type < FYET_ERROR)
            continue;
        /* libfyaml's collected positions are 1-based already. */
        return fail(l, COUNCIL_EPARSE, de->line > 0 ? de->line : line,
                    de->column > 0 ? de->column : col, "syntax error: %s",
                    de->msg ? de->msg : "malformed YAML");
    }
    return fail(l, COUNCIL_EPARSE, line, col, "syntax error: malformed YAML");
}

/*
 * Method: pull events; a stack holds the open collections; each scalar or
 * collection start becomes a node appended to the collection on top.  The
 * depth and node-count caps stop hostile input while it streams, before
 * anything large is built.
 */
static council_err
build_tree(ld *l, const char *text, size_t len, node **out)
{
    struct fy_diag_cfg dcfg;
    struct fy_diag *fd = NULL;
    struct fy_parse_cfg pcfg;
    struct fy_parser *fyp = NULL;
    struct fy_event *ev = NULL;
    node *stack[MAX_DEPTH + 1];
    size_t depth = 0, count = 0;
    int docs = 0, line = 1, col = 1;
    node *root = NULL;
    council_err rc = COUNCIL_OK;

    *out = NULL;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = no_output;
    dcfg.colorize = false;
    fd = fy_diag_create(&dcfg);
    if (fd == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    fy_diag_set_collect_errors(fd, true);
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_AUTO;
    pcfg.diag = fd;
    fyp = fy_parser_create(&pcfg);
    if (fyp == NULL || fy_parser_set_string(fyp, text, len) != 0) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    for (;;) {
        const struct fy_mark *m;
        node *n = NULL;

        ev = fy_parser_parse(fyp);
        if (ev == NULL)
            break;
        m = fy_event_start_mark(ev);
        if (m != NULL) {
            line = m->line + 1;
            col = m->column + 1;
            /* Quoted scalars and aliases are marked after their '"',
             * '\'' or '*': point at that character instead. */
            if (m->input_pos > 0 && m->input_pos <= len && col > 1 &&
                (ev->type == FYET_ALIAS
                     ? text[m->input_pos - 1] == '*'
                     : ev->type == FYET_SCALAR &&
                           (text[m->input_pos - 1] == '"' ||
                            text[m->input_pos - 1] == '\'') &&
                           fy_token_scalar_style(ev->scalar.value) !=
                               FYSS_PLAIN))
                col--;
        }
        switch (ev->type) {
        case FYET_DOCUMENT_START:
            if (++docs > 1) {
                rc = fail(l, COUNCIL_EPARSE, line, col,
                          "expected a single document, found another");
                goto out;
            }
            break;
        case FYET_ALIAS:
            rc = fail(l, COUNCIL_EINVAL, line, col,
                      "aliases (*name) are not supported; write the value "
                      "out");
            goto out;
        case FYET_SCALAR:
        case FYET_MAPPING_START:
        case FYET_SEQUENCE_START:
            if (++count > MAX_NODES) {
                rc = fail(l, COUNCIL_EINVAL, line, col,
                          "too many values (more than %d); a council "
                          "definition is small",
                          MAX_NODES);
                goto out;
            }
            n = council__calloc(1, sizeof(*n));
            if (n == NULL) {
                rc = COUNCIL_ENOMEM;
                goto out;
            }
            n->line = line;
            n->col = col;
            if (ev->type == FYET_SCALAR) {
                size_t tl = 0;
                const char *t = fy_token_get_text(ev->scalar.value, &tl);

                n->type = N_SCALAR;
                n->plain =
                    fy_token_scalar_style(ev->scalar.value) == FYSS_PLAIN;
                n->text = council__strndup(t ? t : "", t ? tl : 0);
                n->len = t ? tl : 0;
                if (t == NULL || n->text == NULL) {
                    node_free(n);
                    rc = COUNCIL_ENOMEM;
                    goto out;
                }
            } else {
                n->type = ev->type == FYET_MAPPING_START ? N_MAP : N_SEQ;
            }
            if (depth == 0) {
                root = n;
            } else if (node_add(stack[depth - 1], n) != 0) {
                node_free(n);
                rc = COUNCIL_ENOMEM;
                goto out;
            }
            if (n->type != N_SCALAR) {
                if (depth == MAX_DEPTH) {
                    rc = fail(l, COUNCIL_EINVAL, line, col,
                              "nested too deeply (more than %d levels)",
                              MAX_DEPTH);
                    goto out;
                }
                stack[depth++] = n;
            }
            break;
        case FYET_MAPPING_END:
        case FYET_SEQUENCE_END:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        fy_parser_event_free(fyp, ev);
        ev = NULL;
    }
    if (fy_parser_get_stream_error(fyp) || fy_diag_got_error(fd)) {
        rc = parse_error(l, fd, line, col);
        goto out;
    }
    *out = root;
    root = NULL;
out:
    if (ev != NULL)
        fy_parser_event_free(fyp, ev);
    node_free(root);
    fy_parser_destroy(fyp);
    fy_diag_destroy(fd);
    return rc;
}

/* ------------------------------------------------------------------------
 * Schema helpers
 * ------------------------------------------------------------------------ */

static int
is_null(const node *n)
{
    if (n->type != N_SCALAR || !n->plain)
        return 0;
    return n->len == 0 || strcmp(n->text, "~") == 0 ||
           strcmp(n->text, "null") == 0 || strcmp(n->text, "Null") == 0 ||
           strcmp(n->text, "NULL") == 0;
}

static const char *
kind_of(const node *n)
{
    if (n->type == N_MAP)
        return "a mapping";
    if (n->type == N_SEQ)
        return "a list";
    return is_null(n) ? "null" : "a scalar";
}

static size_t
levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[MAX_NAME + 1];

    if (la > MAX_NAME || lb > MAX_NAME)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/*
 * Check a mapping's keys against the known ones and hand back each value
 * (NULL when absent) in vals[], parallel to keys[].  Rejects non-mappings,
 * non-scalar keys, unknown keys (with a suggestion at distance <= 2),
 * duplicates and missing required keys (required[i] != 0).
 */
static council_err
map_fields(ld *l, const node *m, const char *where, const char *const *keys,
           const int *required, size_t nkeys, const node **vals)
{
    char sb[64];

    for (size_t i = 0; i < nkeys; i++)
        vals[i] = NULL;
    if (m->type != N_MAP)
        return fail_at(l, m, "%s: expected a mapping, got %s", where,
                       kind_of(m));
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        const node *k = m->kids[i];
        size_t best = (size_t)-1, bi = 0, j;

        if (k->type != N_SCALAR)
            return fail_at(l, k, "%s: expected a string key, got %s", where,
                           kind_of(k));
        for (j = 0; j < nkeys; j++) {
            size_t d;

            if (strcmp(k->text, keys[j]) == 0 && strlen(keys[j]) == k->len)
                break;
            d = levenshtein(k->text, keys[j]);
            if (d < best) {
                best = d;
                bi = j;
            }
        }
        if (j == nkeys) {
            if (best <= 2)
                return fail_at(l, k,
                               "unknown key \"%s\" in %s (did you "
                               "mean \"%s\"?)",
                               shown(sb, sizeof(sb), k->text, k->len), where,
                               keys[bi]);
            return fail_at(l, k, "unknown key \"%s\" in %s",
                           shown(sb, sizeof(sb), k->text, k->len), where);
        }
        if (vals[j] != NULL)
            return fail_at(l, k, "duplicate key \"%s\" in %s", keys[j], where);
        vals[j] = m->kids[i + 1];
    }
    for (size_t i = 0; i < nkeys; i++)
        if (required[i] && vals[i] == NULL)
            return fail_at(l, m, "%s: missing required key \"%s\"", where,
                           keys[i]);
    return COUNCIL_OK;
}

/* A non-null scalar as a new string. */
static council_err
get_str(ld *l, const node *n, const char *path, char **out)
{
    if (n->type != N_SCALAR || is_null(n))
        return fail_at(l, n, "%s: expected a string, got %s", path, kind_of(n));
    if (memchr(n->text, '\0', n->len) != NULL)
        return fail_at(l, n, "%s: must not contain a NUL character", path);
    *out = council__strndup(n->text, n->len);
    return *out ? COUNCIL_OK : COUNCIL_ENOMEM;
}

static int
valid_name(const char *s, size_t len)
{
    if (len == 0 || len > MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static council_err
get_name(ld *l, const node *n, const char *path, char **out)
{
    char sb[64];
    council_err rc = get_str(l, n, path, out);

    if (rc != COUNCIL_OK)
        return rc;
    if (!valid_name(n->text, n->len)) {
        council__free(*out);
        *out = NULL;
        return fail_at(l, n,
                       "%s: invalid name \"%s\" (expected 1 to %d of "
                       "A-Z a-z 0-9 _ . -)",
                       path, shown(sb, sizeof(sb), n->text, n->len), MAX_NAME);
    }
    return COUNCIL_OK;
}

/* A plain decimal integer within [min, max]. */
static council_err
get_int(ld *l, const node *n, const char *path, long min, long max, int *out)
{
    char sb[64];
    const char *s = n->text;
    size_t i = 0;
    int neg = 0;
    long v = 0;

    if (n->type != N_SCALAR || is_null(n))
        return fail_at(l, n, "%s: expected an integer, got %s", path,
                       kind_of(n));
    if (!n->plain)
        return fail_at(l, n,
                       "%s: expected an integer, got the string "
                       "\"%s\"",
                       path, shown(sb, sizeof(sb), s, n->len));
    if (n->len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n->len)
        goto bad;
    for (; i < n->len; i++) {
        if (s[i] < '0' || s[i] > '9')
            goto bad;
        if (v > 1000000000L)
            goto range; /* every bound here is far below */
        v = v * 10 + (s[i] - '0');
    }
    if (neg)
        v = -v;
    if (v < min || v > max)
        goto range;
    *out = (int)v;
    return COUNCIL_OK;
bad:
    return fail_at(l, n, "%s: expected an integer, got \"%s\"", path,
                   shown(sb, sizeof(sb), s, n->len));
range:
    return fail_at(l, n, "%s: expected an integer from %ld to %ld, got %s",
                   path, min, max, shown(sb, sizeof(sb), s, n->len));
}

static council_err
get_duration(ld *l, const node *n, const char *path, uint64_t *out)
{
    char sb[64];

    if (n->type != N_SCALAR || is_null(n))
        return fail_at(l, n,
                       "%s: expected a duration (e.g. 250ms, 3s, 5m), "
                       "got %s",
                       path, kind_of(n));
    if (council__parse_duration(n->text, n->len, out) != 0)
        return fail_at(l, n,
                       "%s: expected a duration (e.g. 250ms, 3s, 5m, "
                       "1h, or a number of ms), got \"%s\"",
                       path, shown(sb, sizeof(sb), n->text, n->len));
    if (*out == 0)
        return fail_at(l, n, "%s: expected a duration greater than 0", path);
    return COUNCIL_OK;
}

/* A plain decimal number within [min, max] ("0.9", "1", ".75"). */
static council_err
get_number(ld *l, const node *n, const char *path, double min, double max,
           double *out)
{
    char sb[64], buf[64];
    char *end = NULL;
    double v;

    if (n->type != N_SCALAR || is_null(n))
        return fail_at(l, n, "%s: expected a number from %g to %g, got %s",
                       path, min, max, kind_of(n));
    if (!n->plain || n->len == 0 || n->len >= sizeof(buf) ||
        strspn(n->text, "0123456789.+-eE") != n->len)
        goto bad;
    memcpy(buf, n->text, n->len + 1);
    v = strtod(buf, &end);
    if (end != buf + n->len)
        goto bad;
    if (!(v >= min && v <= max))
        return fail_at(l, n, "%s: expected a number from %g to %g, got %s",
                       path, min, max, shown(sb, sizeof(sb), n->text, n->len));
    *out = v;
    return COUNCIL_OK;
bad:
    return fail_at(l, n, "%s: expected a number from %g to %g, got \"%s\"",
                   path, min, max, shown(sb, sizeof(sb), n->text, n->len));
}

/* A share of the deadline: "20%" (0..90) or a duration ("30s"). */
static council_err
get_reserve(ld *l, const node *n, const char *path, int *pct, uint64_t *ms)
{
    char sb[64];
    size_t i;
    int v = 0;

    if (n->type != N_SCALAR || is_null(n))
        return fail_at(l, n,
                       "%s: expected a share like 20%% or a duration, "
                       "got %s",
                       path, kind_of(n));
    if (n->len >= 2 && n->text[n->len - 1] == '%') {
        for (i = 0; i + 1 < n->len; i++) {
            if (n->text[i] < '0' || n->text[i] > '9' || v > 1000)
                goto bad;
            v = v * 10 + (n->text[i] - '0');
        }
        if (v > 90)
            return fail_at(l, n,
                           "%s: expected a share from 0%% to 90%%, "
                           "got %s",
                           path, shown(sb, sizeof(sb), n->text, n->len));
        *pct = v;
        *ms = 0;
        return COUNCIL_OK;
    }
    if (council__parse_duration(n->text, n->len, ms) == 0 && *ms > 0) {
        *pct = 0;
        return COUNCIL_OK;
    }
bad:
    return fail_at(l, n,
                   "%s: expected a share like 20%% or a duration "
                   "(e.g. 30s), got \"%s\"",
                   path, shown(sb, sizeof(sb), n->text, n->len));
}

int
council__parse_duration(const char *s, size_t len, uint64_t *out_ms)
{
    uint64_t v = 0, mult;
    size_t i = 0;

    if (s == NULL || len == 0)
        return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');

        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (i == 0)
        return -1; /* no digits: junk, or a sign */
    if (i == len)
        mult = 1;
    else if (len - i == 2 && s[i] == 'm' && s[i + 1] == 's')
        mult = 1;
    else if (len - i == 1 && s[i] == 's')
        mult = 1000;
    else if (len - i == 1 && s[i] == 'm')
        mult = 60000;
    else if (len - i == 1 && s[i] == 'h')
        mult = 3600000;
    else
        return -1;
    if (v > UINT64_MAX / mult)
        return -1;
    *out_ms = v * mult;
    return 0;
}

/* ------------------------------------------------------------------------
 * The schema
 * ------------------------------------------------------------------------ */

static council_err
load_provider(ld *l, const node *key, const node *val, council__provider_def *p)
{
    static const char *const keys[] = {"kind", "base_url", "api_key_env",
                                       "max_parallel"};
    static const int req[] = {1, 0, 0, 0};
    const node *v[4];
    char where[128], path[160], sb[64];
    council_err rc;

    rc = get_name(l, key, "providers", &p->name);
    if (rc != COUNCIL_OK)
        return rc;
    snprintf(where, sizeof(where), "providers.%s", p->name);
    rc = map_fields(l, val, where, keys, req, 4, v);
    if (rc != COUNCIL_OK)
        return rc;

    snprintf(path, sizeof(path), "%s.kind", where);
    if (v[0]->type != N_SCALAR || is_null(v[0]))
        return fail_at(l, v[0],
                       "%s: expected one of openai, anthropic, "
                       "got %s",
                       path, kind_of(v[0]));
    if (strcmp(v[0]->text, "openai") == 0)
        p->kind = COUNCIL__PROVIDER_OPENAI;
    else if (strcmp(v[0]->text, "anthropic") == 0)
        p->kind = COUNCIL__PROVIDER_ANTHROPIC;
    else
        return fail_at(l, v[0],
                       "%s: expected one of openai, anthropic, "
                       "got \"%s\"",
                       path, shown(sb, sizeof(sb), v[0]->text, v[0]->len));

    snprintf(path, sizeof(path), "%s.base_url", where);
    if (v[1] != NULL) {
        size_t n;

        rc = get_str(l, v[1], path, &p->base_url);
        if (rc != COUNCIL_OK)
            return rc;
        if (strncmp(p->base_url, "http://", 7) != 0 &&
            strncmp(p->base_url, "https://", 8) != 0)
            return fail_at(l, v[1],
                           "%s: expected a URL starting with "
                           "http:// or https://, got \"%s\"",
                           path, shown(sb, sizeof(sb), v[1]->text, v[1]->len));
        n = strlen(p->base_url);
        while (n > 0 && p->base_url[n - 1] == '/')
            p->base_url[--n] = '\0';
        if (n <= (p->base_url[4] == 's' ? 8u : 7u))
            return fail_at(l, v[1],
                           "%s: expected a URL with a host, got "
                           "\"%s\"",
                           path, shown(sb, sizeof(sb), v[1]->text, v[1]->len));
    } else if (p->kind == COUNCIL__PROVIDER_ANTHROPIC) {
        p->base_url = council__strdup("https://api.anthropic.com/v1");
        if (p->base_url == NULL)
            return COUNCIL_ENOMEM;
    } else {
        return fail_at(l, val,
                       "%s: missing required key \"base_url\" (kind "
                       "openai has no default)",
                       where);
    }

    if (v[2] != NULL) {
        snprintf(path, sizeof(path), "%s.api_key_env", where);
        rc = get_str(l, v[2], path, &p->api_key_env);
        if (rc != COUNCIL_OK)
            return rc;
        p->api_key_env_line = v[2]->line;
        p->api_key_env_col = v[2]->col;
        if (p->api_key_env[0] == '\0' || strchr(p->api_key_env, '=') != NULL)
            return fail_at(l, v[2],
                           "%s: expected the name of an "
                           "environment variable",
                           path);
    }
    if (v[3] != NULL) {
        snprintf(path, sizeof(path), "%s.max_parallel", where);
        rc = get_int(l, v[3], path, 0, 1000000, &p->max_parallel);
        if (rc != COUNCIL_OK)
            return rc;
    }
    return COUNCIL_OK;
}

static council_err
load_providers(ld *l, const node *m, council_def *def)
{
    council_err rc;

    if (m->type != N_MAP)
        return fail_at(l, m,
                       "providers: expected a mapping of provider "
                       "names to providers, got %s",
                       kind_of(m));
    if (m->n == 0)
        return fail_at(l, m, "providers: expected at least one provider");
    def->providers = council__calloc(m->n / 2, sizeof(*def->providers));
    if (def->providers == NULL)
        return COUNCIL_ENOMEM;
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        council__provider_def *p = &def->providers[def->n_providers++];

        if (m->kids[i]->type != N_SCALAR)
            return fail_at(l, m->kids[i],
                           "providers: expected a provider "
                           "name, got %s",
                           kind_of(m->kids[i]));
        for (size_t j = 0; j + 1 < def->n_providers; j++)
            if (strcmp(def->providers[j].name, m->kids[i]->text) == 0)
                return fail_at(l, m->kids[i],
                               "duplicate key \"%s\" in "
                               "providers",
                               def->providers[j].name);
        rc = load_provider(l, m->kids[i], m->kids[i + 1], p);
        if (rc != COUNCIL_OK)
            return rc;
    }
    return COUNCIL_OK;
}

/* "members[1].provider: unknown provider ..." with the known ones. */
static council_err
find_provider(ld *l, const council_def *def, const node *n, const char *path,
              size_t *out)
{
    char known[160], sb[64];
    size_t k = 0;

    if (n->type != N_SCALAR || is_null(n))
        return fail_at(l, n, "%s: expected a provider name, got %s", path,
                       kind_of(n));
    for (size_t i = 0; i < def->n_providers; i++) {
        if (strcmp(def->providers[i].name, n->text) == 0 &&
            strlen(n->text) == n->len) {
            *out = i;
            return COUNCIL_OK;
        }
    }
    known[0] = '\0';
    for (size_t i = 0; i < def->n_providers; i++) {
        int w = snprintf(known + k, sizeof(known) - k, "%s%s", i ? ", " : "",
                         def->providers[i].name);

        if (w < 0 || (size_t)w >= sizeof(known) - k) {
            memcpy(known + sizeof(known) - 6, ", ...", 6);
            break;
        }
        k += (size_t)w;
    }
    return fail_at(l, n, "%s: unknown provider \"%s\" (known: %s)", path,
                   shown(sb, sizeof(sb), n->text, n->len), known);
}

static council_err load_fallback(ld *l, council_def *def, const node *s);

/* A member (is_chair = 0), the chairman (1) or a fallback chairman (2). */
static council_err
load_member(ld *l, const council_def *def, const node *m, const char *where,
            int is_chair, council__member_def *out)
{
    static const char *const mkeys[] = {"name", "provider", "model", "system"};
    static const int mreq[] = {1, 1, 1, 0};
    static const char *const ckeys[] = {"provider", "model", "system",
                                        "fallback"};
    static const int creq[] = {1, 1, 0, 0};
    const node *v[4];
    const node **f = is_chair ? v : v + 1; /* f[0] provider .. f[2] system */
    char path[96];
    council_err rc;

    /* is_chair 1: the chairman (may hold a fallback list, returned
     * through *fallback); 2: an entry of that list. */
    if (is_chair)
        rc = map_fields(l, m, where, ckeys, creq, is_chair == 1 ? 4 : 3, v);
    else
        rc = map_fields(l, m, where, mkeys, mreq, 4, v);
    if (rc != COUNCIL_OK)
        return rc;
    if (is_chair) {
        out->name = council__strdup("chairman");
        if (out->name == NULL)
            return COUNCIL_ENOMEM;
    } else {
        snprintf(path, sizeof(path), "%s.name", where);
        rc = get_name(l, v[0], path, &out->name);
        if (rc != COUNCIL_OK)
            return rc;
    }
    snprintf(path, sizeof(path), "%s.provider", where);
    rc = find_provider(l, def, f[0], path, &out->provider);
    if (rc != COUNCIL_OK)
        return rc;
    snprintf(path, sizeof(path), "%s.model", where);
    rc = get_str(l, f[1], path, &out->model);
    if (rc != COUNCIL_OK)
        return rc;
    if (out->model[0] == '\0')
        return fail_at(l, f[1],
                       "%s: expected a model name, got an empty "
                       "string",
                       path);
    if (f[2] != NULL) {
        snprintf(path, sizeof(path), "%s.system", where);
        rc = get_str(l, f[2], path, &out->system);
    }
    if (rc == COUNCIL_OK && is_chair == 1 && v[3] != NULL)
        rc = load_fallback(l, (council_def *)def, v[3]);
    return rc;
}

/* chairman.fallback: a list of {provider, model, system}. */
static council_err
load_fallback(ld *l, council_def *def, const node *s)
{
    char where[48];
    council_err rc;

    if (s->type != N_SEQ)
        return fail_at(l, s,
                       "chairman.fallback: expected a list of "
                       "{provider, model}, got %s",
                       kind_of(s));
    if (s->n > MAX_MEMBERS)
        return fail_at(l, s,
                       "chairman.fallback: expected at most %d "
                       "models, got %zu",
                       MAX_MEMBERS, s->n);
    if (s->n == 0)
        return COUNCIL_OK;
    def->chair_fallback = council__calloc(s->n, sizeof(*def->chair_fallback));
    if (def->chair_fallback == NULL)
        return COUNCIL_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        council__member_def *m = &def->chair_fallback[def->n_chair_fallback++];

        snprintf(where, sizeof(where), "chairman.fallback[%zu]", i);
        rc = load_member(l, def, s->kids[i], where, 2, m);
        if (rc != COUNCIL_OK)
            return rc;
    }
    return COUNCIL_OK;
}

static council_err
load_members(ld *l, const node *s, council_def *def)
{
    char where[32];
    council_err rc;

    if (s->type != N_SEQ)
        return fail_at(l, s, "members: expected a list of members, got %s",
                       kind_of(s));
    if (s->n == 0 || s->n > MAX_MEMBERS)
        return fail_at(l, s, "members: expected 1 to %d members, got %zu",
                       MAX_MEMBERS, s->n);
    def->members = council__calloc(s->n, sizeof(*def->members));
    if (def->members == NULL)
        return COUNCIL_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        council__member_def *m = &def->members[def->n_members++];

        snprintf(where, sizeof(where), "members[%zu]", i);
        rc = load_member(l, def, s->kids[i], where, 0, m);
        if (rc != COUNCIL_OK)
            return rc;
        if (strcmp(m->name, "chairman") == 0) {
            /* Events and results name the chairman "chairman". */
            const node *mm = s->kids[i];

            for (size_t k = 0; k + 1 < mm->n; k += 2)
                if (strcmp(mm->kids[k]->text, "name") == 0)
                    return fail_at(l, mm->kids[k + 1],
                                   "%s.name: \"chairman\" is reserved for "
                                   "the chairman (events name it so); "
                                   "choose another member name",
                                   where);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(def->members[j].name, m->name) == 0) {
                /* Point at this member's name value. */
                const node *mm = s->kids[i];

                for (size_t k = 0; k + 1 < mm->n; k += 2)
                    if (strcmp(mm->kids[k]->text, "name") == 0)
                        return fail_at(l, mm->kids[k + 1],
                                       "%s.name: duplicate member name "
                                       "\"%s\" (also members[%zu])",
                                       where, m->name, j);
            }
        }
    }
    return COUNCIL_OK;
}

static council_err
load_limits(ld *l, const node *m, council_def *def)
{
    static const char *const keys[] = {
        "member_timeout", "deadline", "retries",     "quorum",
        "max_tokens",     "rounds",   "convergence", "synthesis_reserve"};
    static const int req[] = {0, 0, 0, 0, 0, 0, 0, 0};
    const node *v[8];
    council__limits *lim = &def->limits;
    council_err rc;

    rc = map_fields(l, m, "limits", keys, req, 8, v);
    if (rc == COUNCIL_OK && v[0] != NULL)
        rc = get_duration(l, v[0], "limits.member_timeout",
                          &lim->member_timeout_ms);
    if (rc == COUNCIL_OK && v[1] != NULL)
        rc = get_duration(l, v[1], "limits.deadline", &lim->deadline_ms);
    if (rc == COUNCIL_OK && v[2] != NULL)
        rc = get_int(l, v[2], "limits.retries", 0, 10, &lim->retries);
    if (rc == COUNCIL_OK && v[3] != NULL)
        rc = get_int(l, v[3], "limits.quorum", 1, (long)def->n_members,
                     &lim->quorum);
    if (rc == COUNCIL_OK && v[4] != NULL)
        rc =
            get_int(l, v[4], "limits.max_tokens", 1, 1000000, &lim->max_tokens);
    if (rc == COUNCIL_OK && v[5] != NULL)
        rc = get_int(l, v[5], "limits.rounds", 1, 10, &lim->rounds);
    if (rc == COUNCIL_OK && v[6] != NULL)
        rc = get_number(l, v[6], "limits.convergence", 0, 1, &lim->convergence);
    if (rc == COUNCIL_OK && v[7] != NULL)
        rc = get_reserve(l, v[7], "limits.synthesis_reserve",
                         &lim->synthesis_reserve_pct,
                         &lim->synthesis_reserve_ms);
    return rc;
}

static council_err
load_top(ld *l, const node *root, council_def *def)
{
    static const char *const keys[] = {"name",     "strategy", "providers",
                                       "members",  "chairman", "limits",
                                       "isolation"};
    static const int req[] = {1, 0, 1, 1, 1, 0, 0};
    const node *v[7];
    char sb[64];
    council_err rc;

    if (root->type != N_MAP)
        return fail_at(l, root,
                       "expected a mapping at the top level (name, "
                       "providers, members, chairman), got %s",
                       kind_of(root));
    rc = map_fields(l, root, "the top level", keys, req, 7, v);
    if (rc != COUNCIL_OK)
        return rc;
    rc = get_name(l, v[0], "name", &def->name);
    if (rc != COUNCIL_OK)
        return rc;
    def->strategy = COUNCIL__STRATEGY_RANK;
    if (v[1] != NULL) {
        const node *s = v[1];

        if (s->type != N_SCALAR || is_null(s))
            return fail_at(l, s,
                           "strategy: expected one of rank, debate, "
                           "vote, got %s",
                           kind_of(s));
        if (strcmp(s->text, "rank") == 0)
            def->strategy = COUNCIL__STRATEGY_RANK;
        else if (strcmp(s->text, "debate") == 0)
            def->strategy = COUNCIL__STRATEGY_DEBATE;
        else if (strcmp(s->text, "vote") == 0)
            def->strategy = COUNCIL__STRATEGY_VOTE;
        else
            return fail_at(l, s,
                           "strategy: expected one of rank, debate, "
                           "vote, got \"%s\"",
                           shown(sb, sizeof(sb), s->text, s->len));
    }
    def->isolation = COUNCIL_ISOLATION_DEFAULT;
    if (v[6] != NULL) {
        const node *s = v[6];

        if (s->type != N_SCALAR || is_null(s))
            return fail_at(l, s, "isolation: expected none or process, got %s",
                           kind_of(s));
        if (strcmp(s->text, "none") == 0)
            def->isolation = COUNCIL_ISOLATION_NONE;
        else if (strcmp(s->text, "process") == 0)
            def->isolation = COUNCIL_ISOLATION_PROCESS;
        else
            return fail_at(l, s,
                           "isolation: expected none or process, got \"%s\"",
                           shown(sb, sizeof(sb), s->text, s->len));
    }
    rc = load_providers(l, v[2], def);
    if (rc != COUNCIL_OK)
        return rc;
    rc = load_members(l, v[3], def);
    if (rc != COUNCIL_OK)
        return rc;
    rc = load_member(l, def, v[4], "chairman", 1, &def->chairman);
    if (rc != COUNCIL_OK)
        return rc;
    def->limits.member_timeout_ms = 60000;
    def->limits.deadline_ms = 300000;
    def->limits.retries = 2;
    def->limits.quorum = (int)(def->n_members / 2 + 1);
    def->limits.max_tokens = 1024;
    def->limits.rounds = 3;
    def->limits.convergence = 0.9;
    def->limits.synthesis_reserve_pct = 20;
    if (v[5] != NULL)
        rc = load_limits(l, v[5], def);
    return rc;
}

/* ------------------------------------------------------------------------
 * Public entry points
 * ------------------------------------------------------------------------ */

/* strerror is not thread-safe; the GNU strerror_r is (_GNU_SOURCE). */
static const char *
errstr(int e, char *buf, size_t size)
{
    return strerror_r(e, buf, size);
}

static council_err
load_text(const char *text, size_t len, council_diag *diag, council_def **out)
{
    ld l = {.diag = diag, .failed = 0};
    node *root = NULL;
    council_def *def = NULL;
    council_err rc;

    if (len > MAX_TEXT) {
        rc = fail(&l, COUNCIL_EINVAL, 0, 0,
                  "input too large (%zu bytes; "
                  "the limit is %u)",
                  len, MAX_TEXT);
        goto out;
    }
    rc = check_bytes(&l, text, len);
    if (rc != COUNCIL_OK)
        goto out;
    rc = check_indicators(&l, text, len);
    if (rc != COUNCIL_OK)
        goto out;
    rc = build_tree(&l, text, len, &root);
    if (rc != COUNCIL_OK)
        goto out;
    if (root == NULL || is_null(root)) {
        rc = fail(&l, COUNCIL_EINVAL, 1, 1,
                  "empty document: expected a "
                  "mapping with name, providers, members, chairman");
        goto out;
    }
    def = council__calloc(1, sizeof(*def));
    if (def == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    atomic_init(&def->refs, 1);
    copy_trunc(def->source, sizeof(def->source), diag->file);
    rc = load_top(&l, root, def);
    if (rc != COUNCIL_OK)
        goto out;
    /* The text itself, for a child-process host to load the same council
     * from (src/host). */
    def->text = council__strndup(text, len);
    if (def->text == NULL) {
        rc = COUNCIL_ENOMEM;
        goto out;
    }
    def->text_len = len;
    *out = def;
    def = NULL;
out:
    if (rc == COUNCIL_ENOMEM && !l.failed)
        fail(&l, rc, 0, 0, "out of memory");
    council_def_free(def);
    node_free(root);
    return rc;
}

council_err
council_def_load_string(const char *text, size_t len, const char *name,
                        council_def **out, council_diag *diag)
{
    council_diag scratch;

    if (diag == NULL)
        diag = &scratch;
    diag_init(diag, name);
    if (out == NULL || (text == NULL && len > 0)) {
        copy_trunc(diag->msg, sizeof(diag->msg), "invalid argument");
        return COUNCIL_EINVAL;
    }
    *out = NULL;
    return load_text(text ? text : "", len, diag, out);
}

council_err
council_def_load_file(const char *path, council_def **out, council_diag *diag)
{
    council_diag scratch;
    ld l;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    char eb[128];
    int fd = -1;
    council_err rc = COUNCIL_OK;

    if (diag == NULL)
        diag = &scratch;
    diag_init(diag, path);
    l.diag = diag;
    l.failed = 0;
    if (path == NULL || out == NULL)
        return fail(&l, COUNCIL_EINVAL, 0, 0, "invalid argument");
    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;

        rc = fail(&l,
                  e == ENOENT || e == ENOTDIR ? COUNCIL_ENOTFOUND : COUNCIL_EIO,
                  0, 0, "cannot open %s: %s", path,
                  e == ENOENT ? "no such file" : errstr(e, eb, sizeof(eb)));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = fail(&l, COUNCIL_EIO, 0, 0, "cannot read %s: %s", path,
                  errstr(errno, eb, sizeof(eb)));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = fail(&l, COUNCIL_EIO, 0, 0,
                  "cannot read %s: it is a "
                  "directory",
                  path);
        goto out;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > MAX_TEXT) {
        rc = fail(&l, COUNCIL_EINVAL, 0, 0,
                  "file too large (%lld bytes; "
                  "the limit is %u)",
                  (long long)st.st_size, MAX_TEXT);
        goto out;
    }
    /* Read to end of file, up to one byte past the cap (the file may grow,
     * or be a pipe). */
    for (;;) {
        ssize_t r;

        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16384;
            char *nb;

            if (ncap > MAX_TEXT + 1)
                ncap = MAX_TEXT + 1;
            if (ncap == cap) {
                rc = fail(&l, COUNCIL_EINVAL, 0, 0,
                          "file too large (more "
                          "than %u bytes)",
                          MAX_TEXT);
                goto out;
            }
            nb = council__realloc(buf, ncap);
            if (nb == NULL) {
                rc = fail(&l, COUNCIL_ENOMEM, 0, 0, "out of memory");
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = fail(&l, COUNCIL_EIO, 0, 0, "cannot read %s: %s", path,
                      errstr(errno, eb, sizeof(eb)));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    rc = load_text(buf ? buf : "", len, diag, out);
out:
    if (fd >= 0)
        close(fd);
    council__free(buf);
    return rc;
}

static void
member_clear(council__member_def *m)
{
    council__free(m->name);
    council__free(m->model);
    council__free(m->system);
}

void
council_def_free(council_def *def)
{
    if (def == NULL ||
        atomic_fetch_sub_explicit(&def->refs, 1, memory_order_acq_rel) != 1)
        return;
    council__free(def->text);
    for (size_t i = 0; i < def->n_providers; i++) {
        council__free(def->providers[i].name);
        council__free(def->providers[i].base_url);
        council__free(def->providers[i].api_key_env);
    }
    council__free(def->providers);
    for (size_t i = 0; i < def->n_members; i++)
        member_clear(&def->members[i]);
    council__free(def->members);
    member_clear(&def->chairman);
    for (size_t i = 0; i < def->n_chair_fallback; i++)
        member_clear(&def->chair_fallback[i]);
    council__free(def->chair_fallback);
    council__free(def->name);
    council__free(def);
}

const council_def *
council__def_ref(const council_def *def)
{
    council_def *d = (council_def *)def; /* the count is not the content */

    atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
    return def;
}

council_err
council_def_check_env(const council_def *def, council_diag *diag)
{
    council_diag scratch;
    ld l;

    if (diag == NULL)
        diag = &scratch;
    diag_init(diag, def != NULL ? def->source : NULL);
    l.diag = diag;
    l.failed = 0;
    if (def == NULL)
        return fail(&l, COUNCIL_EINVAL, 0, 0, "invalid argument");
    for (size_t i = 0; i < def->n_providers; i++) {
        const council__provider_def *p = &def->providers[i];
        const char *v;

        if (p->api_key_env == NULL)
            continue;
        v = getenv(p->api_key_env);
        if (v == NULL || v[0] == '\0')
            return fail(
                &l, COUNCIL_EINVAL, p->api_key_env_line, p->api_key_env_col,
                "providers.%s.api_key_env: "
                "environment variable %s is %s",
                p->name, p->api_key_env, v == NULL ? "not set" : "empty");
    }
    return COUNCIL_OK;
}

const char *
council_def_strategy(const council_def *def)
{
    if (def == NULL)
        return NULL;
    switch (def->strategy) {
    case COUNCIL__STRATEGY_RANK:
        return "rank";
    case COUNCIL__STRATEGY_DEBATE:
        return "debate";
    case COUNCIL__STRATEGY_VOTE:
        return "vote";
    }
    return "unknown";
}

const char *
council_def_name(const council_def *def)
{
    return def ? def->name : NULL;
}

size_t
council_def_member_count(const council_def *def)
{
    return def ? def->n_members : 0;
}

const char *
council_def_member_name(const council_def *def, size_t i)
{
    if (def == NULL || i >= def->n_members)
        return NULL;
    return def->members[i].name;
}
