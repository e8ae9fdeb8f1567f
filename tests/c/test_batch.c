#include <errno.h>
#include <string.h>

#include "gx/base.h"
#include "gxtest.h"

int main(void) {
    struct gx_batch b;
    CHECK(gx_batch_init(&b, 0, 2048, 64) == -EINVAL, "cap 0 refused");
    CHECK(gx_batch_init(&b, GX_BATCH_MAX + 1, 2048, 64) == -EINVAL, "cap too large refused");
    CHECK(gx_batch_init(&b, 4, 64, 64) == -EINVAL, "slot smaller than head+tail refused");
    CHECK(gx_batch_init(&b, 8, 2048, GX_HEADROOM) == 0, "init");
    CHECK(b.cap == 8 && b.n == 0, "cap %u n %u", b.cap, b.n);
    for (uint32_t i = 0; i < b.cap; i++) {
        CHECK(b.pkt[i].data == b.mem + i * 2048 + GX_HEADROOM, "slot %u data", i);
        memset(b.pkt[i].data, 0xab, gx_batch_room(&b)); /* whole room writable (ASan checks) */
    }
    b.pkt[3].data += 10;
    b.pkt[3].len = 5;
    b.n = 4;
    gx_batch_reset(&b);
    CHECK(b.pkt[3].data == b.mem + 3 * 2048 + GX_HEADROOM && b.pkt[3].len == 0 && b.n == 0, "reset");
    gx_batch_free(&b);
    CHECK(b.mem == NULL, "freed");
    TEST_DONE();
}
