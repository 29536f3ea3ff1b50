package controllers

// HostIndex is the cache index of APIRules by host. The admission webhook finds the APIRules
// that claim a host through it (with validate.HostIndexKey), instead of listing them all.
const HostIndex = hostIndex
