/* postalias.c: postalias and newaliases: build and query alias databases (the aliases(5) format). */
#include "postmap.h"

int main(int argc, char **argv)
{
        return postmap_tool_main(argc, argv, true);
}
