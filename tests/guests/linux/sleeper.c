/* Sleeps in short naps for about two seconds (the VMM's threads sit in
 * timed waits meanwhile), then prints "slept" and exits 0. */
#include <stdio.h>
#include <time.h>

int main(void) {
    struct timespec nap = {0, 50 * 1000 * 1000};
    for (int i = 0; i < 40; i++) nanosleep(&nap, 0);
    puts("slept");
    return 0;
}
