/* Replaying a fuzz target's committed corpus (tests/fuzz/corpus/<target>/) in a C unit test. */
#ifndef GX_TEST_CORPUS_H
#define GX_TEST_CORPUS_H

#include <dirent.h>

#include "gxtest.h"

/* Run every file of tests/fuzz/corpus/<target>/ through one(), each in a buffer of exactly its size
 * (as libFuzzer hands them); returns how many ran, and in *prefixed how many names start with prefix
 * (prefix and prefixed may be NULL). */
static int replay_corpus(const char *target, int (*one)(const uint8_t *, size_t), const char *prefix,
                         int *prefixed) {
    char dir[256];
    snprintf(dir, sizeof(dir), "tests/fuzz/corpus/%s", target);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "open %s (run from the repository root)", dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL, "open %s", path);
        if (f == NULL)
            continue;
        static uint8_t buf[1 << 20];
        size_t len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        one(copy, len);
        free(copy);
        n++;
        if (prefix != NULL && prefixed != NULL && strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            (*prefixed)++;
    }
    closedir(d);
    return n;
}

#endif
