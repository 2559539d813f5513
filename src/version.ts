// The version of xvbd (printed by --version, written into the metrics file).
export const VERSION = '0.1.0';
