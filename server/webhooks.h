// SPDX-License-Identifier: Apache-2.0
// `tableguard webhooks delete --name NAME`: deletes the release's Mutating- and
// ValidatingWebhookConfiguration through the Kubernetes API with the pod's service account, so
// the chart's pre-delete Job removes the webhooks before the Service and pods go away.
#ifndef TABLEGUARD_WEBHOOKS_H
#define TABLEGUARD_WEBHOOKS_H

// argv[0] is "delete". Prints what it did to stdout, errors to stderr. Returns the exit code:
// 0 both configurations are gone (deleted now or already absent), 1 an API call failed, 2 usage.
int webhooks_main(int argc, char **argv);

#endif
