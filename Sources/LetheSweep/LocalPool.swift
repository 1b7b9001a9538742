import Foundation
import LetheRuns
import LetheSpec

/// The local executor: a pool of `lethe run` processes, `jobs` at a time, each with `threads` threads
/// (so together they do not oversubscribe the machine), started as soon as the jobs they need have
/// succeeded. Each job's output goes to its own log file.
///
/// The children run in process groups of their own, so a Ctrl-C at the terminal reaches the pool
/// alone: it stops starting jobs and sends each running child one SIGTERM, which makes it save its
/// training state and exit (a later `lethe sweep` resumes it); then the pool reports and stops too.
public struct LocalPool {
    public var binary: String
    public var jobs: Int
    public var threads: Int
    public var logFolder: String
    public var log: (String) -> Void

    public init(binary: String, jobs: Int, threads: Int, logFolder: String, log: @escaping (String) -> Void) {
        self.binary = binary
        self.jobs = max(1, jobs)
        self.threads = max(1, threads)
        self.logFolder = logFolder
        self.log = log
    }

    public enum Status: Equatable, Sendable {
        case succeeded
        case failed(String)
        /// Not started: a job it needs failed.
        case skipped(String)
        /// Stopped by the pool's stop request (its state saved if it was training).
        case stopped
        /// Not started before the pool was stopped.
        case notStarted
    }

    public struct Outcome: Sendable {
        public var statuses: [String: Status]
        /// The signal that stopped the pool, if one did.
        public var stoppedBy: Int32?
    }

    struct Running {
        var job: SweepJob
        var started: Date
    }

    /// Runs `work` to completion (or until a stop request); returns every job's status.
    public func run(_ work: [SweepJob]) throws -> Outcome {
        try FileManager.default.createDirectory(atPath: logFolder, withIntermediateDirectories: true)
        var statuses: [String: Status] = [:]
        var running: [pid_t: Running] = [:]
        var waiting = work
        var stopSignal: Int32?
        let total = work.count
        var done = 0
        try StopSignals.deferring {
            while true {
                if stopSignal == nil, let signal = StopSignals.requested {
                    stopSignal = signal
                    log(
                        "sweep: \(StopSignals.name(signal)) received; stopping \(running.count) running job\(running.count == 1 ? "" : "s") (each saves its training state) and starting no more"
                    )
                    for pid in running.keys { kill(pid, SIGTERM) }
                }
                // Jobs whose needs failed will never start.
                var changed = true
                while changed {
                    changed = false
                    for (i, job) in waiting.enumerated().reversed() {
                        if let bad = job.needs.first(where: {
                            if case .succeeded = statuses[$0] { return false }
                            return statuses[$0] != nil
                        }) {
                            statuses[job.name] = .skipped(bad)
                            waiting.remove(at: i)
                            done += 1
                            log("sweep: [\(done)/\(total)] \(job.label): skipped, \(bad) did not succeed")
                            changed = true
                        }
                    }
                }
                if stopSignal == nil {
                    while running.count < jobs,
                        let i = waiting.firstIndex(where: { $0.needs.allSatisfy { statuses[$0] == .succeeded } })
                    {
                        let job = waiting.remove(at: i)
                        let pid = try spawn(job)
                        running[pid] = Running(job: job, started: Date())
                        log("sweep: started \(job.label) (log \(logPath(job)))")
                    }
                }
                if running.isEmpty { break }
                var status: Int32 = 0
                let pid = waitpid(-1, &status, WNOHANG)
                if pid <= 0 {
                    usleep(100_000)
                    continue
                }
                guard let finished = running.removeValue(forKey: pid) else { continue }
                done += 1
                let elapsed = Elapsed.text(Date().timeIntervalSince(finished.started))
                let exited = status & 0x7f == 0
                let code = (status >> 8) & 0xff
                let signal = status & 0x7f
                let outcome: Status
                if exited && code == 0 {
                    outcome = .succeeded
                } else if stopSignal != nil && !exited {
                    outcome = .stopped
                } else {
                    outcome = .failed(exited ? "exit code \(code)" : "killed by \(StopSignals.name(signal))")
                }
                statuses[finished.job.name] = outcome
                switch outcome {
                case .succeeded:
                    log("sweep: [\(done)/\(total)] \(finished.job.label): finished in \(elapsed)")
                case .stopped:
                    log("sweep: [\(done)/\(total)] \(finished.job.label): stopped after \(elapsed)")
                case .failed(let why):
                    log(
                        "sweep: [\(done)/\(total)] \(finished.job.label): FAILED (\(why)); see \(logPath(finished.job))"
                    )
                default: break
                }
            }
        }
        for job in waiting { statuses[job.name] = .notStarted }
        return Outcome(statuses: statuses, stoppedBy: stopSignal ?? StopSignals.requested)
    }

    public func logPath(_ job: SweepJob) -> String { logFolder + "/" + job.name + ".log" }

    /// Starts `lethe <arguments> --threads N` with its output appended to the job's log, stdin from
    /// /dev/null, in a process group of its own, with default signal handling and nothing blocked.
    func spawn(_ job: SweepJob) throws -> pid_t {
        let argv = [binary] + job.arguments + ["--threads", String(threads)]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath(job), O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t()
        sigemptyset(&none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(
            &attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let header = "# lethe sweep job \(job.name): \(argv.joined(separator: " "))\n"
        if let handle = FileHandle(forWritingAtPath: logPath(job))
            ?? {
                _ = FileManager.default.createFile(atPath: logPath(job), contents: nil)
                return FileHandle(forWritingAtPath: logPath(job))
            }()
        {
            handle.seekToEndOfFile()
            handle.write(Data(header.utf8))
            try? handle.close()
        }
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, &attr, cArgs, environ)
        guard rc == 0 else {
            throw RunError("cannot start \(binary): \(String(cString: strerror(rc)))")
        }
        return pid
    }
}
