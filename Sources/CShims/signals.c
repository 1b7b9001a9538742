#define _POSIX_C_SOURCE 200809L
#include "CShims.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A stop request (SIGTERM, SIGINT, SIGHUP) while a training loop defers it: the loop saves its state
   and leaves. Outside such a loop, and on a second request, the signal does what it does by default. */
static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t stop_deferred = 0;

static void die_by(int sig) {
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_stop(int sig) {
    if (stop_deferred && stop_signal == 0) {
        stop_signal = sig;
        return;
    }
    die_by(sig);
}

void lethe_stop_install(void) {
    const int signals[] = {SIGTERM, SIGINT, SIGHUP};
    /* A parent may have started the process with these signals blocked (posix_spawn passes on the
       spawning thread's mask): unblock them, or a stop request would wait until the run ends. */
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaddset(&set, signals[i]);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(signals[i], &sa, NULL);
    }
}

void lethe_stop_defer(int on) { stop_deferred = on; }
int lethe_stop_requested(void) { return stop_signal; }

void lethe_stop_die(int sig) {
    fflush(stdout);
    fflush(stderr);
    die_by(sig);
    _exit(128 + sig);
}
