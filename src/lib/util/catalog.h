/* catalog.h: MESSAGE_IDs of the log lines explained by the shipped journal catalog (units/postfix.catalog).
 */
#pragma once

/* Pass as struct log_fields.catalog_id; `journalctl -x` then shows the explanation. The ids must stay
 * equal to the "-- ID" lines of units/postfix.catalog (tests/unit/test_generator.c checks that). */
#define CATALOG_INET_DISABLED        "9dfda8f456ee4f09b81dcfd031582f6b" /* master_service_disable = inet */
#define CATALOG_ADDRESS_IN_USE       "f9b71b5a9e5c43c1a4b7664d303ff048" /* bind: Address already in use */
#define CATALOG_SUBMIT_REFUSED       "0f5f70b482d44ba49c27d525938010a0" /* authorized_submit_users */
#define CATALOG_BIND_CONNECT_TIMEOUT "f4842de7b4594a27a87a932bd722b5cf" /* smtp_bind_address timeout */
#define CATALOG_LOOPS_BACK           "b0266b6c5c4a4b22ad00843db0ed87d8" /* mail for X loops back to myself */
#define CATALOG_UNSUPPORTED_TABLE    "f2ba267c395c443b8f09d2e2ca3c9461" /* unsupported dictionary type */
