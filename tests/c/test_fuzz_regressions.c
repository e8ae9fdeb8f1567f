/* Inputs the fuzz targets (tests/fuzz/) once failed on, replayed through the same target code under gcc
 * (make ctest / make asan), with every committed seed of those targets (aead_open, ws_reader,
 * socks_relay).
 *
 * A target's corpus directory holds seed-* (made by tests/fuzz/make_corpus.py) and regress-* (inputs that
 * found a bug; the README says which). Each target is compiled in here with its entry points renamed;
 * a failed check in it aborts, which fails this test.
 *
 *  - socks_relay/regress-down-over-max-datagram: a 14-byte datagram to a relay made with max_datagram 8
 *    came back as a frame (csrc/socks_relay.c, down_main: the batch slot is rounded up to 64 bytes,
 *    and only what did not fit the slot was dropped).
 *  - aead_open/regress-replay-hash-low-bit: two authentic datagrams in one batch whose salts differ only
 *    in bit 0 of byte 8; the second was dropped as a replay (csrc/replay.c, salt_hash: the multiplier
 *    b | 1 dropped the low bit of each 16-byte chunk's second word, so such salts had the same hash). */
#include <dirent.h>
#include <sched.h>

#define LLVMFuzzerInitialize relay_init_unused
#define LLVMFuzzerTestOneInput relay_one
#include "../fuzz/fuzz_socks_relay.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerInitialize aead_init
#define LLVMFuzzerTestOneInput aead_one
#include "../fuzz/fuzz_aead_open.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput ws_reader_one
#include "../fuzz/fuzz_ws_reader.c"
#undef LLVMFuzzerTestOneInput

#include "corpus.h"
#include "gxtest.h"


int main(void) {
    aead_init(NULL, NULL);
    int n = replay_corpus("aead_open", aead_one, NULL, NULL);
    CHECK(n >= 2, "aead_open: %d inputs replayed", n);
    printf("aead_open: %d inputs replayed\n", n);
    n = replay_corpus("ws_reader", ws_reader_one, NULL, NULL);
    CHECK(n >= 2, "ws_reader: %d inputs replayed", n);
    printf("ws_reader: %d inputs replayed\n", n);
    /* The relay sends each frame to the address in it: only inside a network namespace of our own. */
    if ((unshare(CLONE_NEWNET) == 0 || unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) && lo_up() == 0) {
        int n = replay_corpus("socks_relay", relay_one, NULL, NULL);
        CHECK(n >= 2, "socks_relay: %d inputs replayed", n);
        printf("socks_relay: %d inputs replayed\n", n);
    } else {
        printf("note: no private network namespace: socks_relay inputs not replayed\n");
    }
    TEST_DONE();
}
