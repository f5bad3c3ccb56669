"""Watches one folder the way hurahura (autorthanc's companion) does, and prints what it would act on.

hurahura's MIResearch_SubdirectoryHandler schedules a watchdog Observer on the folder, not recursive,
and acts on: a directory created, a directory moved/renamed (its destination), a file created whose
name ends in .zip, .tar or .tar.gz. It skips names containing '.WORKING' or 'MIResearch-'. Anything
else (a file moved or renamed, a file modified, a deletion) it does not act on.

Each event becomes one JSON line on stdout: {"kind": ..., "name": ..., "acts": bool}; "ready" once the
observer runs. Run with Debian's python3-watchdog: /usr/bin/python3 hurahura_watch.py <folder>.
"""
import json
import os
import sys
import time

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

IGNORE = (".WORKING", "MIResearch-")
ARCHIVES = (".zip", ".tar", ".tar.gz")


def emit(kind, path, acts):
    name = os.path.basename(path)
    skipped = any(p in name for p in IGNORE)
    print(json.dumps({"kind": kind, "name": name, "acts": acts and not skipped}), flush=True)


class Handler(FileSystemEventHandler):
    def on_created(self, event):
        if event.is_directory:
            emit("dir-created", event.src_path, True)
        else:
            emit("file-created", event.src_path, event.src_path.endswith(ARCHIVES))

    def on_moved(self, event):
        # hurahura acts on a moved directory only; a renamed file is ignored.
        emit("dir-moved" if event.is_directory else "file-moved", event.dest_path, event.is_directory)

    def on_deleted(self, event):
        emit("deleted", event.src_path, False)


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    observer = Observer()
    observer.schedule(Handler(), path=folder, recursive=False)
    observer.start()
    print(json.dumps({"kind": "ready", "name": "", "acts": False}), flush=True)
    try:
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        observer.stop()
        observer.join()


if __name__ == "__main__":
    main()
