// SPDX-License-Identifier: Apache-2.0
// The monotonic clock (CLOCK_MONOTONIC), the one every deadline and timer of the server is kept
// on: it does not jump when the wall clock is set.
#ifndef TABLEGUARD_MONO_H
#define TABLEGUARD_MONO_H

#include <pthread.h>
#include <time.h>

// Now, in seconds.
double mono_now(void);
// A time of the clock, in seconds.
double mono_seconds(const struct timespec *t);
// Seconds since t0, a time of the clock.
double mono_since(const struct timespec *t0);
// The time of the clock s seconds after its start, for pthread_cond_timedwait on a condition
// made by mono_cond_init.
struct timespec mono_at(double s);
// Initialises a condition variable whose timed waits run on this clock.
void mono_cond_init(pthread_cond_t *c);

#endif
