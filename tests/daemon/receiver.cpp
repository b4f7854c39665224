#include "receiver.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

namespace visitd::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {
// One io_context and acceptor per receiver, owned by its thread.
struct Server {
  net::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
};
}  // namespace

boost::json::value Received::json() const { return boost::json::parse(body); }

Receiver::Receiver() {
  auto server = std::make_shared<Server>();
  port_ = server->acceptor.local_endpoint().port();
  thread_ = std::thread([this, server] {
    while (true) {
      tcp::socket socket(server->io);
      beast::error_code ec;
      server->acceptor.accept(socket, ec);
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      if (ec) continue;
      beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      Answer answer;
      {
        std::lock_guard lock(mutex_);
        if (!script_.empty()) {
          answer = script_.front();
          script_.pop_front();
        }
        Received r;
        r.target = std::string(req.target());
        r.idempotency_key = std::string(req["Idempotency-Key"]);
        r.content_type = std::string(req[http::field::content_type]);
        r.body = req.body();
        r.at = std::chrono::steady_clock::now();
        received_.push_back(std::move(r));
      }
      http::response<http::string_body> res{http::status(answer.status), 11};
      res.set(http::field::content_type, "application/json");
      if (answer.retry_after_s)
        res.set(http::field::retry_after, std::to_string(*answer.retry_after_s));
      res.body() = answer.status < 300 ? "{\"status\":\"success\"}" : "{\"error\":\"scripted\"}";
      res.prepare_payload();
      http::write(socket, res, ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
      changed_.notify_all();
    }
  });
}

Receiver::~Receiver() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  // Wake the blocking accept with one last connection.
  try {
    net::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
  } catch (...) {
  }
  thread_.join();
}

std::string Receiver::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

void Receiver::script(std::vector<Answer> answers) {
  std::lock_guard lock(mutex_);
  script_.assign(answers.begin(), answers.end());
}

std::vector<Received> Receiver::wait_for(std::size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return received_.size() >= n; });
  return received_;
}

std::vector<Received> Receiver::received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

}  // namespace visitd::test
