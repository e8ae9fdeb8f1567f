/* What lwIP asks of its platform (NO_SYS): the time, and random numbers. */
#include <stdint.h>
#include <sys/random.h>
#include <time.h>

#include "lwip/arch.h"
#include "lwip/sys.h"

#include "stack_int.h"

uint64_t gx_stack_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

u32_t sys_now(void) {
    return (u32_t)gx_stack_now_ms();
}

/* xorshift64*, seeded from the kernel once: TCP port seeds and initial sequence numbers. */
static uint64_t rand_state;

unsigned int gx_lwip_rand(void) {
    if (rand_state == 0) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed) || seed == 0)
            seed = gx_stack_now_ms() ^ 0x9e3779b97f4a7c15ull;
        rand_state = seed | 1u;
    }
    rand_state ^= rand_state >> 12;
    rand_state ^= rand_state << 25;
    rand_state ^= rand_state >> 27;
    return (unsigned int)((rand_state * 0x2545f4914f6cdd1dull) >> 32);
}
