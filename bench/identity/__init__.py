"""Card checks per second against bare RSA-2048 verifications, measured in the same run."""
