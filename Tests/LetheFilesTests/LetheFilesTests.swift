import Foundation
import Testing
import LetheFiles

func scratchFolder() -> String {
    let p = NSTemporaryDirectory() + "lethe-files-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

@Suite struct RegularFileTests {
    @Test func readsARegularFileWhole() throws {
        let dir = scratchFolder()
        try Data([1, 2, 3, 4]).write(to: URL(fileURLWithPath: dir + "/a.bin"))
        #expect(try RegularFile.read(dir + "/a.bin") == [1, 2, 3, 4])
        #expect(try RegularFile.read(dir + "/a.bin", limit: 4) == [1, 2, 3, 4])
        #expect { try RegularFile.read(dir + "/a.bin", limit: 3) } throws: { "\($0)".contains("more than the 3 bytes") }
    }

    /// A device or a FIFO is refused at once: reading /dev/zero would never end, opening a FIFO would
    /// wait for a writer forever.
    @Test func devicesFIFOsAndDirectoriesAreRefusedAtOnce() throws {
        let dir = scratchFolder()
        #expect(mkfifo(dir + "/pipe", 0o644) == 0)
        let started = Date()
        #expect { try RegularFile.read(dir + "/pipe") } throws: {
            "\($0)".contains("is a FIFO (named pipe), not a regular file")
        }
        #expect { try RegularFile.read("/dev/zero") } throws: {
            "\($0)".contains("is a character device, not a regular file")
        }
        #expect { try RegularFile.read(dir) } throws: { "\($0)".contains("is a directory, expected a file") }
        #expect { try RegularFile.read(dir + "/absent") } throws: { "\($0)".contains("no such file or directory") }
        #expect { try RegularFile.require("/dev/null") } throws: { "\($0)".contains("character device") }
        #expect { try RegularFile.requireDirectory("/dev/null") } throws: { "\($0)".contains("expected a directory") }
        #expect(Date().timeIntervalSince(started) < 5)
    }

    @Test func symbolicLinksAreFollowedOnlyWhenAsked() throws {
        let dir = scratchFolder()
        try Data([7]).write(to: URL(fileURLWithPath: dir + "/target"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: dir + "/target")
        #expect(try RegularFile.read(dir + "/link") == [7])
        #expect { try RegularFile.read(dir + "/link", followLinks: false) } throws: {
            "\($0)".contains("symbolic link")
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/zero", withDestinationPath: "/dev/zero")
        #expect { try RegularFile.read(dir + "/zero") } throws: { "\($0)".contains("character device") }
    }

    @Test func chunksCoverTheWholeFile() throws {
        let dir = scratchFolder()
        let bytes = (0..<10_000).map { UInt8($0 % 251) }
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/f"))
        var seen: [UInt8] = []
        try RegularFile.chunks(dir + "/f", chunkSize: 999) { seen += $0 }
        #expect(seen == bytes)
    }
}

@Suite struct ConfinedTests {
    @Test func namesOutsideTheDirectoryAreRefused() throws {
        let dir = scratchFolder()
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        #expect(try Confined.path("sub/a.json", in: dir) == dir + "/sub/a.json")
        #expect(try Confined.path("a.json", in: dir) == dir + "/a.json")
        for bad in ["../../../../etc/hostname", "/etc/hostname", "sub/../../x", "./a", "a//b", "", "sub/."] {
            #expect(throws: FileError.self, "\(bad)") { try Confined.path(bad, in: dir) }
        }
        try FileManager.default.createSymbolicLink(atPath: dir + "/out", withDestinationPath: "/etc")
        #expect { try Confined.path("out/hostname", in: dir) } throws: { "\($0)".contains("symbolic link") }
    }
}

@Suite struct FileLockTests {
    @Test func aHeldLockIsNotTakenTwiceAndIsFreeAfterRelease() throws {
        let path = scratchFolder() + "/x.lock"
        let first = try FileLock.acquire(path)
        #expect(try FileLock.attempt(path) == nil, "flock locks conflict between open file descriptions")
        #expect(FileLock.holder(of: path) == Int(getpid()))
        first.release()
        let second = try #require(try FileLock.attempt(path))
        second.release()
    }

    /// The kernel drops the lock of a process that dies, even by SIGKILL: nothing stale to clean up.
    @Test func aLockOfAKilledProcessIsRecovered() throws {
        let path = scratchFolder() + "/k.lock"
        let holder = Process()
        // The shell takes the lock on descriptor 9 and becomes `sleep` (exec), which then holds it.
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 9>\"$0\"; flock 9; exec sleep 60", path]
        try holder.run()
        var waited = 0
        while try FileLock.attempt(path).map({
            $0.release()
            return true
        }) ?? false, waited < 100 {
            usleep(20_000)  // the child has not taken it yet
            waited += 1
        }
        #expect(try FileLock.attempt(path) == nil, "held by the child")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        var free: FileLock?
        for _ in 0..<100 where free == nil {
            free = try FileLock.attempt(path)
            if free == nil { usleep(20_000) }
        }
        #expect(free != nil)
    }

    @Test func aWaiterIsToldWhoHoldsTheLock() throws {
        let path = scratchFolder() + "/w.lock"
        let first = try FileLock.acquire(path)
        let released = DispatchSemaphore(value: 0)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) {
            first.release()
            released.signal()
        }
        var told: Int?? = .none
        let second = try FileLock.acquire(path) { told = .some($0) }
        #expect(told == .some(Int(getpid())))
        second.release()
        released.wait()
    }
}
