"""Passwords hashed quickly in the test process: the production algorithm at one iteration.

Django's PBKDF2 takes 1,000,000 iterations (0.3-0.6 s a password on the test machine), and the suite makes some
340 users: a test of a hundred users' rights spent a minute hashing their passwords. The hash names its algorithm
(`pbkdf2_sha256`, as production's) and its iteration count, so the Daphne and bridge processes the tests start verify
it with Django's own hasher (and re-hash it at production strength on a sign-in, as for any older hash).
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1
