// SPDX-License-Identifier: Apache-2.0
// Unit tests for util/mono: seconds on the monotonic clock, and condition variables whose timed
// waits run on it (a deadline taken from mono_now means what it says).
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "util/mono.h"

static void
seconds_and_times_convert_both_ways(void **state)
{
    (void)state;
    struct timespec t = {12345, 678900000};
    assert_true(mono_seconds(&t) > 12345.6788 && mono_seconds(&t) < 12345.6790);
    struct timespec back = mono_at(mono_seconds(&t));
    assert_int_equal(back.tv_sec, 12345);
    assert_true(back.tv_nsec > 678899000 && back.tv_nsec < 678901000);
}

static void
now_and_since_are_on_the_same_clock(void **state)
{
    (void)state;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double before = mono_seconds(&t0);
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    double since = mono_since(&t0);
    double now = mono_now();
    assert_true(since >= 0.02);
    assert_true(now - before >= since);
}

// A condition made by mono_cond_init waits until a deadline on the monotonic clock; one on the
// wall clock would take the same deadline (seconds since boot) as long past and return at once.
static void
a_timed_wait_lasts_until_its_monotonic_deadline(void **state)
{
    (void)state;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c;
    mono_cond_init(&c);
    double start = mono_now();
    struct timespec until = mono_at(start + 0.05);
    pthread_mutex_lock(&m);
    int rc;
    while ((rc = pthread_cond_timedwait(&c, &m, &until)) == 0)
        ;
    pthread_mutex_unlock(&m);
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(mono_now() - start >= 0.05);
    pthread_cond_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seconds_and_times_convert_both_ways),
        cmocka_unit_test(now_and_since_are_on_the_same_clock),
        cmocka_unit_test(a_timed_wait_lasts_until_its_monotonic_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
