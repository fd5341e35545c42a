/*
 * The pod sandbox's first process for the containerd tests' pause image: holds the pod's
 * namespaces open until told to stop. It sleeps in pause(), exits 0 on SIGINT or SIGTERM
 * (the runtime's StopPodSandbox), and reaps any child that gets reparented to it (it is
 * pid 1 of the pod when the pod shares its pid namespace). Built static: the image has no
 * libc.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP | SA_RESTART};
  sigaction(SIGINT, &on_stop, NULL);
  sigaction(SIGTERM, &on_stop, NULL);
  sigaction(SIGCHLD, &on_child, NULL);
  for (;;) pause();
}
