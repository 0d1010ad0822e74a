/*
 * sandbox_locks.c - per-sandbox locks as a set of held ids (see
 * sandbox_locks.h). The set is a small array: it holds only the ids being
 * worked on right now, a few dozen at most.
 */
#include "runtime/sandbox_locks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sb_sandbox_locks {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    char (*held)[32];
    size_t count, cap;
};

struct sb_sandbox_locks *sandbox_locks_new(void)
{
    struct sb_sandbox_locks *locks = calloc(1, sizeof *locks);
    if (!locks)
        return NULL;
    pthread_mutex_init(&locks->mu, NULL);
    pthread_cond_init(&locks->freed, NULL);
    return locks;
}

void sandbox_locks_free(struct sb_sandbox_locks *locks)
{
    if (!locks)
        return;
    pthread_mutex_destroy(&locks->mu);
    pthread_cond_destroy(&locks->freed);
    free(locks->held);
    free(locks);
}

static long find(const struct sb_sandbox_locks *locks, const char *id)
{
    for (size_t i = 0; i < locks->count; i++)
        if (strcmp(locks->held[i], id) == 0)
            return (long)i;
    return -1;
}

int sandbox_lock(struct sb_sandbox_locks *locks, const char *id)
{
    pthread_mutex_lock(&locks->mu);
    while (find(locks, id) >= 0)
        pthread_cond_wait(&locks->freed, &locks->mu);
    if (locks->count == locks->cap) {
        size_t cap = locks->cap ? locks->cap * 2 : 16;
        char(*grown)[32] = realloc(locks->held, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&locks->mu);
            return -1;
        }
        locks->held = grown;
        locks->cap = cap;
    }
    snprintf(locks->held[locks->count++], sizeof locks->held[0], "%s", id);
    pthread_mutex_unlock(&locks->mu);
    return 0;
}

void sandbox_unlock(struct sb_sandbox_locks *locks, const char *id)
{
    pthread_mutex_lock(&locks->mu);
    long i = find(locks, id);
    if (i >= 0) {
        locks->count--;
        memcpy(locks->held[i], locks->held[locks->count], sizeof locks->held[0]);
    }
    pthread_cond_broadcast(&locks->freed);
    pthread_mutex_unlock(&locks->mu);
}
