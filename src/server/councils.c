/* SPDX-License-Identifier: MIT */
/*
 * The server's councils: every *.yaml, *.yml and *.json file of the
 * --councils directory, loaded and checked as `council validate` does
 * (API key variables included), named by their `name`.  A set is
 * all-or-nothing: one bad file, or two files with one name, and the whole
 * load fails with "FILE:LINE:COL: message", so a reload on SIGHUP keeps
 * the old set.  Sets are immutable; the server swaps them under its lock.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static int
has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);

    return n > k && strcmp(s + n - k, suf) == 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
diag_text(const council_diag *d, const char *path, council_err rc, char *err,
          size_t errsz)
{
    if (d->line > 0)
        snprintf(err, errsz, "%s:%d:%d: %s", d->file[0] ? d->file : path,
                 d->line, d->col, d->msg);
    else
        snprintf(err, errsz, "%s: %s", d->file[0] ? d->file : path,
                 d->msg[0] ? d->msg : council_strerror(rc));
}

/* Add def (taken) to c; checks the name is new. */
static int
cset_add(cset *c, council_def *def, const char *file, char *err, size_t errsz)
{
    const char *name = council_def_name(def);
    centry *e;
    size_t i;

    for (i = 0; i < c->n; i++) {
        if (strcmp(c->e[i].name, name) == 0) {
            snprintf(err, errsz,
                     "%s: council name \"%s\" is already used by %s", file,
                     name, c->e[i].file);
            council_def_free(def);
            return -1;
        }
    }
    e = realloc(c->e, (c->n + 1) * sizeof(*e));
    if (e == NULL) {
        snprintf(err, errsz, "%s: out of memory", file);
        council_def_free(def);
        return -1;
    }
    c->e = e;
    e = &c->e[c->n];
    e->name = strdup(name);
    e->file = strdup(file);
    e->def = def;
    e->loaded_us = wall_us();
    c->n++;
    if (e->name == NULL || e->file == NULL) {
        snprintf(err, errsz, "%s: out of memory", file);
        return -1;
    }
    return 0;
}

int
cset_load_dir(const char *dir, cset **out, char *err, size_t errsz)
{
    DIR *d = NULL;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, i;
    cset *c = NULL;
    int rc = -1;

    *out = NULL;
    d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errsz, "%s: cannot open the councils directory: %s", dir,
                 strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        char **nn;

        if (de->d_name[0] == '.' || !(has_suffix(de->d_name, ".yaml") ||
                                      has_suffix(de->d_name, ".yml") ||
                                      has_suffix(de->d_name, ".json")))
            continue;
        nn = realloc(names, (n + 1) * sizeof(*names));
        if (nn == NULL)
            goto oom;
        names = nn;
        names[n] = strdup(de->d_name);
        if (names[n] == NULL)
            goto oom;
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_str);
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto oom;
    c->refs = 1;
    for (i = 0; i < n; i++) {
        char path[4096];
        council_diag diag;
        council_def *def = NULL;
        council_err e;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        memset(&diag, 0, sizeof(diag));
        e = council_def_load_file(path, &def, &diag);
        if (e == COUNCIL_OK) {
            e = council_def_check_env(def, &diag);
            if (e != COUNCIL_OK)
                council_def_free(def);
        }
        if (e != COUNCIL_OK) {
            diag_text(&diag, path, e, err, errsz);
            goto out;
        }
        if (cset_add(c, def, path, err, errsz) != 0)
            goto out;
    }
    if (c->n == 0) {
        snprintf(err, errsz,
                 "%s: no council files (*.yaml, *.yml, *.json) in the "
                 "directory",
                 dir);
        goto out;
    }
    *out = c;
    c = NULL;
    rc = 0;
    goto out;
oom:
    snprintf(err, errsz, "%s: out of memory", dir);
out:
    if (d != NULL)
        closedir(d);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    cset_free(c);
    return rc;
}

int
cset_load_text(const char *text, const char *name, cset **out, char *err,
               size_t errsz)
{
    council_diag diag;
    council_def *def = NULL;
    council_err e;
    cset *c;

    *out = NULL;
    memset(&diag, 0, sizeof(diag));
    e = council_def_load_string(text, strlen(text), name, &def, &diag);
    if (e != COUNCIL_OK) {
        diag_text(&diag, name, e, err, errsz);
        return -1;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        council_def_free(def);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    c->refs = 1;
    if (cset_add(c, def, name, err, errsz) != 0) {
        cset_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void
cset_free(cset *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < c->n; i++) {
        free(c->e[i].name);
        free(c->e[i].file);
        council_def_free(c->e[i].def);
    }
    free(c->e);
    free(c);
}

const centry *
cset_find(const cset *c, const char *name)
{
    size_t i;

    for (i = 0; c != NULL && i < c->n; i++)
        if (strcmp(c->e[i].name, name) == 0)
            return &c->e[i];
    return NULL;
}
