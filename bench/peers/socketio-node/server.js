// socket.io 4.x on Node with the benchmark's handlers:
// - echo: with an ack, acks the same arguments; without, emits "echo" back;
// - join(room): joins, acks {ok:true};
// - publish({room, data}): emits message(data) to every member of the room,
//   the sender included, acks {ok:true}.
// Listens on the address given as the first argument (default 127.0.0.1:7082).
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const [host, port] = (process.argv[2] || "127.0.0.1:7082").split(":");
const server = http.createServer();
const io = new Server(server, { serveClient: false, cors: { origin: "*" } });

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
    else socket.emit("echo", ...args);
  });
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("publish", (msg, ack) => {
    io.to(String(msg && msg.room)).emit("message", msg && msg.data);
    if (typeof ack === "function") ack({ ok: true });
  });
});

server.listen(Number(port), host, () => {
  console.error(`socket.io ${require("socket.io/package.json").version} peer listening on ${host}:${port}`);
});
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
