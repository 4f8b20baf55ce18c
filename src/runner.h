#ifndef HOOKD_RUNNER_H
#define HOOKD_RUNNER_H
#endif
