"""The Ray batch job, split by concern: run (the job and its summary), pool (actor pool plan), stages
(prepare, segment, finish), record (the columns between stages), worker (process tuning) and ray_private
(every Ray Data internal). Only this package and the service layer import Ray."""
