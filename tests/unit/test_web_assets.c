/* SPDX-License-Identifier: MIT */
/*
 * The web page is built into the binary whole: every file of src/server/web
 * is in the table byte for byte, with its content type, and "/" is the
 * index page, which loads the script and the style sheet it needs.
 */
#include <stdio.h>
#include <stdlib.h>

#include "runner.h"
#include "web_assets.h"

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

TEST(every_file_embedded_byte_for_byte)
{
    static const char *const files[] = {"index.html", "app.js", "style.css"};
    const char *src = getenv("COUNCIL_SOURCE_DIR");

    ASSERT_NOT_NULL(src);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[4096], url[64];
        const council_web_asset *a;
        size_t len;
        char *want;

        snprintf(path, sizeof(path), "%s/src/server/web/%s", src, files[i]);
        snprintf(url, sizeof(url), "/%s", files[i]);
        want = slurp(path, &len);
        ASSERT_NOT_NULL(want);
        a = council_web_asset_find(url);
        if (a == NULL)
            FAIL("%s is not embedded", url);
        ASSERT_EQ_INT(a->len, len);
        ASSERT(memcmp(a->data, want, len) == 0);
        ASSERT_EQ_INT(a->data[len], 0); /* NUL after the bytes */
        free(want);
    }
}

TEST(types_and_index)
{
    const council_web_asset *index = council_web_asset_find("/");

    ASSERT_NOT_NULL(index);
    ASSERT_STR_EQ(index->path, "/index.html");
    ASSERT_STR_EQ(index->content_type, "text/html; charset=utf-8");
    ASSERT_STR_EQ(council_web_asset_find("/app.js")->content_type,
                  "text/javascript; charset=utf-8");
    ASSERT_STR_EQ(council_web_asset_find("/style.css")->content_type,
                  "text/css; charset=utf-8");
    ASSERT(strstr((const char *)index->data, "src=\"/app.js\"") != NULL);
    ASSERT(strstr((const char *)index->data, "href=\"/style.css\"") != NULL);
    ASSERT(council_web_asset_find("/nope.js") == NULL);
    ASSERT(council_web_asset_find("/../CMakeLists.txt") == NULL);
}
