/* SPDX-License-Identifier: MIT */
/*
 * The web page served by `council serve` at / (src/server/web/), built into
 * the binary by cmake/embed_web.cmake: no build step needing the internet,
 * no files to install beside the binary.
 */
#ifndef COUNCIL_SERVER_WEB_ASSETS_H
#define COUNCIL_SERVER_WEB_ASSETS_H

#include <stddef.h>
#include <string.h>

typedef struct council_web_asset {
    const char *path;         /* "/index.html", "/app.js", … */
    const char *content_type; /* with charset for text */
    const unsigned char *data;
    size_t len;
} council_web_asset;

/* Terminated by an entry whose path is NULL. */
extern const council_web_asset council_web_assets[];

/* The asset served at url_path ("/" is "/index.html"), or NULL. */
static inline const council_web_asset *
council_web_asset_find(const char *url_path)
{
    const council_web_asset *a;

    if (strcmp(url_path, "/") == 0)
        url_path = "/index.html";
    for (a = council_web_assets; a->path != NULL; a++)
        if (strcmp(a->path, url_path) == 0)
            return a;
    return NULL;
}

#endif
