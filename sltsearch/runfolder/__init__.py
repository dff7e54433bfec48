"""The run folder (results/<name>): its frozen spec and run.json (`folder`), the checks before a search
resumes in it (`resume`), and `sltsearch repair`, which brings a damaged one back from what is intact (`repair`).

Named ``runfolder``, not ``run``: `sltsearch.run` is the public function, and a package must not hide it.
"""
