/* powercut-tool.c: "powercut-tool baseline SHADOW DIR...": record DIRs as durable before a power-cut test.
 */
#include <stdio.h>
#include <string.h>

#include "shadow.h"

int main(int argc, char **argv)
{
        if (argc < 4 || strcmp(argv[1], "baseline") != 0) {
                fprintf(stderr, "usage: powercut-tool baseline SHADOW DIR...\n");
                return 2;
        }
        for (int i = 3; i < argc; i++) {
                int r = shadow_baseline(argv[2], argv[i]);
                if (r < 0) {
                        fprintf(stderr, "powercut-tool: cannot record %s: %s\n", argv[i], strerror(-r));
                        return 1;
                }
        }
        return 0;
}
